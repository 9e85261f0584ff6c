// Public API of src/store (re-exported from the package root). Filled in by the module's owner.
export {};
