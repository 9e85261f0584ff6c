// Public API of src/eval (re-exported from the package root). Filled in by the module's owner.
export {};
