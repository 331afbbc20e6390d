/** A value that is either ready now or will be: the pipeline's results. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Calls `next` with the value: at once when it is ready, else when it
 * settles, so a synchronous result stays synchronous (no promise, no
 * microtask). `onRejected`, when given, handles a rejected promise; without
 * it the rejection passes on.
 */
export function whenReady<T, R>(
  value: MaybePromise<T>,
  next: (ready: T) => R,
  onRejected?: (cause: unknown) => R,
): MaybePromise<R> {
  return value instanceof Promise ? value.then(next, onRejected) : next(value);
}
