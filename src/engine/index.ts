// Public API of src/engine (re-exported from the package root). Filled in by the module's owner.
export {};
