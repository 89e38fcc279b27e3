/** The whole cluster spec: the field schema with the cross-field rules, checked in one parse. */
import { checkClusterRules } from "./rules";
import { clusterObjectSchema } from "./schema";

export const clusterSchema = clusterObjectSchema.superRefine(checkClusterRules, {
  // The rules run even when some fields failed, so one pass reports field errors and DR rules together.
  when: (payload) => payload.value !== null && typeof payload.value === "object" && !Array.isArray(payload.value),
});
