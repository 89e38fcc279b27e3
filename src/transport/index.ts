export * from "./types";
export * from "./host-key";
export * from "./ssh";
export * from "./pool";
