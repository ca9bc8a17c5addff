// ESLint for the browser pages (web_client/static/js): ES modules loaded as
// they are, no build step. Types are checked by `tsc -p web_client` (see
// tsconfig.json); this config keeps to the rules that catch real bugs.

import js from "@eslint/js";
import globals from "globals";

/** Socket.io event names and error codes come from protocol.js, never literals. */
const PROTOCOL_LITERALS = [
  {
    selector:
      "CallExpression[callee.property.name=/^(on|once|off|call|emit|emitWithAck)$/][arguments.0.type='Literal']",
    message: "Use an event name from protocol.js (REQUEST, EVENT or TRANSPORT), not a string literal.",
  },
  {
    selector: "Property[key.name='code'][value.type='Literal']",
    message: "Use an error code from protocol.js (ERROR or REMOVAL), not a string literal.",
  },
  {
    // reply.error.code === "..." or code === "..." (a KeyboardEvent's e.code is fine)
    selector:
      "BinaryExpression[right.type='Literal']:matches([left.object.property.name='error'][left.property.name='code'], [left.name='code'])",
    message: "Compare with an error code from protocol.js (ERROR or REMOVAL), not a string literal.",
  },
];

export default [
  js.configs.recommended,
  {
    files: ["static/js/**/*.js"],
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "all", ignoreRestSiblings: true }],
      "no-undef": "error",
      // `x == null` (null or undefined) is the one loose comparison we keep
      eqeqeq: ["error", "always", { null: "ignore" }],
      "prefer-const": "error",
      "no-var": "error",
      // promises: what eslint's core rules can see without type information
      "no-promise-executor-return": "error",
      "prefer-promise-reject-errors": "error",
      "no-async-promise-executor": "error",
      "no-return-assign": ["error", "except-parens"],
      "array-callback-return": ["error", { checkForEach: true }],
      "no-use-before-define": ["error", { functions: false, classes: false, variables: false }],
      "no-self-compare": "error",
      "no-template-curly-in-string": "error",
      "no-unmodified-loop-condition": "error",
      "no-unreachable-loop": "error",
      "no-constructor-return": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
      "no-eval": "error",
      "no-throw-literal": "error",
      "no-shadow": ["error", { builtinGlobals: false, hoist: "functions" }],
      "no-restricted-syntax": ["error", ...PROTOCOL_LITERALS],
    },
  },
  {
    // the config itself runs in Node
    files: ["eslint.config.js"],
    languageOptions: { globals: { ...globals.node } },
  },
];
