// Public API of src/data (re-exported from the package root). Filled in by the module's owner.
export {};
