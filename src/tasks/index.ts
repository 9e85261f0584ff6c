// Public API of src/tasks (re-exported from the package root). Filled in by the module's owner.
export {};
