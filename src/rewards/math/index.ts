// Public API of src/rewards/math (re-exported from the package root). Filled in by the module's owner.
export {};
