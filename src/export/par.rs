//! Work split over threads in contiguous stretches, results in input order,
//! so any number of threads gives the same output. This module owns the
//! split only; what runs on each item is the caller's.

/// Applies `f` to every item of `items` (with its index) on up to `threads`
/// threads, the calling one among them: the results in item order, and the
/// state `S` each stretch of items built (in stretch order).
pub(super) fn map_in_order<T, R, S>(
    items: &[T],
    threads: usize,
    f: impl Fn(usize, &T, &mut S) -> R + Sync,
) -> (Vec<R>, Vec<S>)
where
    T: Sync,
    R: Send,
    S: Default + Send,
{
    let parts = threads.clamp(1, items.len().max(1));
    let size = items.len().div_ceil(parts).max(1);
    let f = &f;
    let run = move |first: usize, stretch: &[T]| {
        let mut state = S::default();
        let out: Vec<R> = (stretch.iter().enumerate())
            .map(|(i, item)| f(first + i, item, &mut state))
            .collect();
        (out, state)
    };
    let mut stretches = items.chunks(size).enumerate();
    let Some((_, head)) = stretches.next() else {
        return (Vec::new(), Vec::new());
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = stretches.map(|(n, c)| s.spawn(move || run(n * size, c))).collect();
        let (mut out, state) = run(0, head);
        let mut states = vec![state];
        for h in handles {
            match h.join() {
                Ok((o, st)) => {
                    out.extend(o);
                    states.push(st);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        (out, states)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_number_of_threads_gives_the_same_results_in_order() {
        let items: Vec<u32> = (0..1000).collect();
        let one = map_in_order(&items, 1, |i, x, sum: &mut u64| {
            *sum += u64::from(*x);
            (i, x * 2)
        });
        for threads in [2, 3, 7, 2000] {
            let many = map_in_order(&items, threads, |i, x, sum: &mut u64| {
                *sum += u64::from(*x);
                (i, x * 2)
            });
            assert_eq!(many.0, one.0);
            assert_eq!(many.1.iter().sum::<u64>(), one.1.iter().sum::<u64>());
        }
        assert_eq!(one.0[999], (999, 1998));
        assert!(map_in_order(&[] as &[u32], 4, |_, x, _: &mut ()| *x).0.is_empty());
    }
}
