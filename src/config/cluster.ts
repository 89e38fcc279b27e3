/** The whole cluster spec: the field schema with the cross-field rules, checked in one parse. */
import { checkClusterRules } from "./rules";
import { clusterObjectSchema } from "./schema";

export const clusterSchema = clusterObjectSchema.superRefine(checkClusterRules);
