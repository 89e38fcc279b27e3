/** The package's public API: the Pulumi components and the cluster spec's types and parser. */
export * from "./pulumi";
export { parseCluster, loadCluster, SpecError, clusterConfigKey, type SpecIssue, type ParseResult, type SpecSource } from "./config/load";
export type { Cluster, ClusterInput, Director as DirectorSpec, RealServer as RealServerSpec, VirtualService, Destination, Persistence } from "./config/schema";
export type { ConnectionInput, ProxyConnectionInput, Connection } from "./config/connection";
