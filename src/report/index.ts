// Public API of src/report (re-exported from the package root). Filled in by the module's owner.
export {};
