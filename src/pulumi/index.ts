export { LvsDrCluster, LvsDirector, RealServerGroup } from "./components";
export type { LvsDrClusterArgs, LvsDirectorArgs, RealServerGroupArgs, AppliedHostState, VirtualServiceSummary } from "./components";
export { Director, RealServer, RealServerRelease } from "./providers";
export type { HostResourceArgs } from "./providers";
export type { ClusterConnections, HostStateFields, ServiceFields, DestinationFields } from "./state";
