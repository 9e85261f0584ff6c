/**
 * A cooperative step budget: every loop in parsing and evaluation calls `step()`, so a check over its
 * time or step allowance stops with BudgetExceeded instead of hanging (JS has no signal.alarm).
 */
export class BudgetExceeded extends Error {
  constructor(readonly why: string) {
    super(`math check exceeded its budget (${why})`);
    this.name = "BudgetExceeded";
  }
}

export class Budget {
  private steps = 0;
  private readonly deadline: number;

  constructor(
    timeoutMs: number,
    private readonly maxSteps = 5_000_000,
  ) {
    this.deadline = performance.now() + timeoutMs;
  }

  step(n = 1): void {
    this.steps += n;
    if (this.steps > this.maxSteps) throw new BudgetExceeded(`more than ${this.maxSteps} steps`);
    // Reading the clock is cheap but not free: look at it every 1024 steps.
    if ((this.steps & 1023) < n && performance.now() > this.deadline) throw new BudgetExceeded("time limit");
  }
}

/** A budget that never runs out, for callers that bound time some other way. */
export const unlimitedBudget = (): Budget => new Budget(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
