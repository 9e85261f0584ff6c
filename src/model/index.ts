// Public API of src/model (re-exported from the package root). Filled in by the module's owner.
export {};
