/** Two suites: `unit` is pure and runs anywhere; `lab` drives real hosts and needs root. */
const tsJest = ["ts-jest", { tsconfig: "tsconfig.json" }];
// Downloaded Node binaries (test/pulumi-engine/node-versions.test.ts) are not modules of this project.
const modulePathIgnorePatterns = ["<rootDir>/.cache/"];
module.exports = {
  testSequencer: "<rootDir>/test/lab/sequencer.js",
  projects: [
    {
      displayName: "unit",
      testEnvironment: "node",
      transform: { "^.+\\.ts$": tsJest },
      modulePathIgnorePatterns,
      testMatch: ["<rootDir>/src/**/*.test.ts", "<rootDir>/test/pulumi-engine/**/*.test.ts"],
    },
    {
      displayName: "lab",
      testEnvironment: "node",
      transform: { "^.+\\.ts$": tsJest },
      modulePathIgnorePatterns,
      testMatch: ["<rootDir>/test/lab/**/*.test.ts"],
    },
  ],
};
