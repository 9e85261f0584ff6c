// Public API of src/rewards/code (re-exported from the package root). Filled in by the module's owner.
export {};
