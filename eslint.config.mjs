// Lint for the whole tree, and the project's layering as a rule: data flows one way,
// config -> model -> parse/render -> plan -> transport -> ops -> pulumi/cli, and no layer's
// code imports a layer above it (tests may, to build what they test against).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const layers = [
  ["config", ["model", "parse", "render", "plan", "transport", "ops", "pulumi", "cli"]],
  ["model", ["parse", "render", "plan", "transport", "ops", "pulumi", "cli"]],
  ["parse", ["plan", "transport", "ops", "pulumi", "cli"]],
  ["render", ["plan", "transport", "ops", "pulumi", "cli"]],
  ["plan", ["transport", "ops", "pulumi", "cli"]],
  ["transport", ["ops", "pulumi", "cli"]],
  ["ops", ["pulumi", "cli"]],
  ["pulumi", ["cli"]],
  ["cli", ["pulumi"]],
];

// The model reads the spec's addresses as validation parsed them (config/addresses.ts); parsing
// address text again below config would let two parses disagree. Host output is parse/'s to read.
const parsedOnce = {
  model: [
    {
      name: "../config/ip",
      importNames: ["parseAddress", "parseCidr", "canonicalAddress", "familyOf", "netmaskToPrefix"],
      message: "the model takes parsed addresses from cluster.addresses (config/addresses.ts), never address text",
    },
  ],
};

const layering = layers.map(([layer, above]) => ({
  files: [`src/${layer}/**/*.ts`],
  ignores: ["**/*.test.ts"],
  rules: {
    "no-restricted-imports": [
      "error",
      {
        paths: parsedOnce[layer] ?? [],
        patterns: [
          {
            regex: `^(\\.\\./)+(${above.join("|")})/`,
            message: `src/${layer} is below ${above.join(", ")}: data flows one way (config -> model -> parse/render -> plan -> transport -> ops -> pulumi/cli).`,
          },
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", ".lab/**", ".cache/**", ".pulumi/**", "bench/results/**", "test/fixtures/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly",
        require: "readonly",
        module: "writable",
        __dirname: "readonly",
        console: "readonly",
        Buffer: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
      },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
    },
  },
  {
    // Plain CommonJS (jest's sequencer, the bin script).
    files: ["**/*.js", "bin/lvsdr"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // Pulumi serializes loadProviderCode into the state: it may use only require and globals,
    // and any change to its text (a comment included) is a change of every stack's providers.
    files: ["src/pulumi/providers.ts"],
    rules: { "@typescript-eslint/no-require-imports": "off", "preserve-caught-error": "off" },
  },
  ...layering,
);
