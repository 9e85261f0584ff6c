// Public API of src/rollout (re-exported from the package root). Filled in by the module's owner.
export {};
