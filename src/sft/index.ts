// Public API of src/sft (re-exported from the package root). Filled in by the module's owner.
export {};
