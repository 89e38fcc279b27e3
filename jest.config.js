/** Two suites: `unit` is pure and runs anywhere; `lab` drives real hosts and needs root. */
const tsJest = ["ts-jest", { tsconfig: "tsconfig.json" }];
module.exports = {
  projects: [
    {
      displayName: "unit",
      testEnvironment: "node",
      transform: { "^.+\\.ts$": tsJest },
      testMatch: ["<rootDir>/src/**/*.test.ts", "<rootDir>/test/pulumi-engine/**/*.test.ts"],
    },
    {
      displayName: "lab",
      testEnvironment: "node",
      transform: { "^.+\\.ts$": tsJest },
      testMatch: ["<rootDir>/test/lab/**/*.test.ts"],
    },
  ],
};
