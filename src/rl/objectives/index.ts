// Public API of src/rl/objectives (re-exported from the package root). Filled in by the module's owner.
export {};
