//! Finding where a resumed stream ends.
//!
//! A checkpoint says the stream holds at least its acknowledged rows; requests sent after the
//! checkpoint may have landed too. Resending rows with the boundaries of another run is not
//! safe: a request starting below the stream's end is refused whole with ALREADY_EXISTS even
//! when its tail is not in the stream. So the end is found with one-row appends of the
//! replayed rows at chosen offsets: ALREADY_EXISTS says the end is past the offset,
//! OUT_OF_RANGE that it is before it, and success that it was exactly there (and the row is
//! now written, at its place). Offsets grow by doubling, then bisect: a few dozen probes for
//! millions of rows in doubt.

/// What a one-row append at an offset said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Accepted: the stream ended exactly at the offset, and now holds that row.
    Written,
    /// ALREADY_EXISTS: the stream holds the offset.
    Exists,
    /// OUT_OF_RANGE: the stream ends before the offset.
    Beyond,
    /// STREAM_FINALIZED: an earlier attempt finalized the stream (and died before saying so).
    Finalized,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Append the row at this offset alone and report what happened.
    Probe(u64),
    /// The offset to probe is past the rows replayed so far: read more input.
    NeedInput,
    /// The stream ends at this offset; write from here on.
    Found(u64),
}

/// The search for a stream's end, which lies in `low..=high`.
#[derive(Debug, Clone)]
pub(crate) struct EndSearch {
    low: u64,
    high: Option<u64>,
    step: u64,
}

impl EndSearch {
    /// A search for a stream known to hold at least `acknowledged` rows.
    pub(crate) fn new(acknowledged: u64) -> Self {
        Self {
            low: acknowledged,
            high: None,
            step: 1,
        }
    }

    /// The next step, when the replayed rows reach offset `available` (exclusive) and
    /// `input_done` says whether more will come.
    pub(crate) fn next(&mut self, available: u64, input_done: bool) -> Result<Step, String> {
        if input_done {
            // The stream cannot hold more rows than its partition has.
            if self.low == available {
                return Ok(Step::Found(available));
            }
            self.high = Some(self.high.map_or(available, |h| h.min(available)));
        }
        let target = match self.high {
            Some(high) if self.low > high => {
                return Err(format!(
                    "the stream's end is not between offsets {} and {high}",
                    self.low
                ));
            }
            Some(high) => self.low + (high - self.low) / 2,
            None => self.low + (self.step - 1),
        };
        if target >= available {
            return Ok(if input_done {
                Step::Found(available)
            } else {
                Step::NeedInput
            });
        }
        Ok(Step::Probe(target))
    }

    /// Takes in what the probe at `offset` said; `Some(end)` once the end is known (the rows
    /// to write start at `end`).
    pub(crate) fn record(&mut self, offset: u64, probe: Probe) -> Result<Option<u64>, String> {
        match probe {
            Probe::Written => Ok(Some(offset + 1)),
            Probe::Exists => {
                self.low = offset + 1;
                if self.high.is_none() {
                    self.step = self.step.saturating_mul(2);
                }
                Ok(None)
            }
            Probe::Beyond if offset <= self.low => Err(format!(
                "the stream ends before offset {offset}, below the {} rows it acknowledged",
                self.low
            )),
            Probe::Beyond => {
                self.high = Some(offset - 1);
                Ok(None)
            }
            Probe::Finalized => Err("the stream is finalized".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a stream of `end` rows resumed at `acknowledged`, with `total`
    /// replayed rows arriving all at once; returns (where writing resumes, probes sent).
    fn search(acknowledged: u64, end: u64, total: u64) -> (u64, u64) {
        let mut search = EndSearch::new(acknowledged);
        let mut probes = 0;
        let mut stream_end = end;
        loop {
            match search.next(total, true).unwrap() {
                Step::Found(at) => {
                    assert_eq!(at, stream_end, "found the end");
                    return (at, probes);
                }
                Step::NeedInput => unreachable!("all input is there"),
                Step::Probe(offset) => {
                    probes += 1;
                    let said = match offset.cmp(&stream_end) {
                        std::cmp::Ordering::Less => Probe::Exists,
                        std::cmp::Ordering::Equal => {
                            stream_end += 1;
                            Probe::Written
                        }
                        std::cmp::Ordering::Greater => Probe::Beyond,
                    };
                    if let Some(at) = search.record(offset, said).unwrap() {
                        assert_eq!(at, stream_end);
                        return (at, probes);
                    }
                }
            }
        }
    }

    #[test]
    fn finds_every_end_between_the_checkpoint_and_the_input_end() {
        for acknowledged in [0u64, 1, 7, 100] {
            for extra in [0u64, 1, 2, 3, 5, 64, 1000, 4097] {
                for tail in [0u64, 1, 9, 5000] {
                    let end = acknowledged + extra;
                    let total = end + tail;
                    let (resumed, probes) = search(acknowledged, end, total);
                    // Either the probe wrote row `end` or the whole input was in the stream.
                    assert!(
                        resumed == end + 1 || (resumed == end && end == total),
                        "{resumed} vs {end}"
                    );
                    assert!(
                        probes <= 2 * (64 - (total - acknowledged).leading_zeros() as u64) + 2,
                        "{probes} probes for {} rows in doubt",
                        total - acknowledged
                    );
                }
            }
        }
    }

    #[test]
    fn waits_for_input_while_the_end_may_lie_further() {
        let mut search = EndSearch::new(10);
        assert_eq!(search.next(11, false), Ok(Step::Probe(10)));
        assert_eq!(search.record(10, Probe::Exists), Ok(None));
        assert_eq!(search.next(12, false), Ok(Step::NeedInput));
        assert_eq!(search.next(13, false), Ok(Step::Probe(12)));
    }

    #[test]
    fn a_stream_shorter_than_its_checkpoint_is_an_error() {
        let mut search = EndSearch::new(10);
        assert_eq!(search.next(100, false), Ok(Step::Probe(10)));
        assert!(search.record(10, Probe::Beyond).is_err());
    }
}
