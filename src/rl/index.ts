// Public API of src/rl (re-exported from the package root). Filled in by the module's owner.
export {};
