//! Counters and histograms a node keeps about itself. A node has a handful
//! of metrics, so they sit in small vectors (linear search beats hashing
//! there), behind one pointer that stays empty until first used: 100,000
//! simulated nodes that never count anything pay 8 bytes each.

use hdrhistogram::Histogram;

#[derive(Debug, Default, Clone)]
pub struct Metrics {
    inner: Option<Box<Inner>>,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    counters: Vec<(&'static str, u64)>,
    histograms: Vec<(&'static str, Histogram<u64>)>,
}

impl Metrics {
    fn inner_mut(&mut self) -> &mut Inner {
        self.inner.get_or_insert_with(Box::default)
    }

    pub fn count(&mut self, name: &'static str, by: u64) {
        let this = self.inner_mut();
        match this.counters.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v += by,
            None => this.counters.push((name, by)),
        }
    }

    pub fn observe(&mut self, name: &'static str, value: u64) {
        let this = self.inner_mut();
        let hist = match this.histograms.iter().position(|(n, _)| *n == name) {
            Some(i) => &mut this.histograms[i].1,
            None => {
                // Auto-resizing histogram with 3 significant digits.
                let h = Histogram::new(3).expect("3 significant digits is a valid precision");
                this.histograms.push((name, h));
                &mut this.histograms.last_mut().expect("just pushed").1
            }
        };
        record(hist, value);
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| v)
    }

    pub fn counters(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.inner.iter().flat_map(|i| i.counters.iter().copied())
    }

    pub fn histogram(&self, name: &str) -> Option<&Histogram<u64>> {
        self.histograms().find(|(n, _)| *n == name).map(|(_, h)| h)
    }

    pub fn histograms(&self) -> impl Iterator<Item = (&'static str, &Histogram<u64>)> + '_ {
        self.inner
            .iter()
            .flat_map(|i| i.histograms.iter().map(|(n, h)| (*n, h)))
    }

    /// Counters and histogram summaries as JSON, for results files.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, v) in self.counters() {
            map.insert(name.to_string(), v.into());
        }
        for (name, h) in self.histograms() {
            map.insert(
                name.to_string(),
                serde_json::json!({
                    "count": h.len(), "min": h.min(), "mean": h.mean(),
                    "p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99), "max": h.max(),
                }),
            );
        }
        serde_json::Value::Object(map)
    }
}

/// Records into an auto-resizing histogram. (`saturating_record` would
/// clamp to the current range instead of growing it.)
pub fn record(hist: &mut Histogram<u64>, value: u64) {
    if hist.record(value).is_err() {
        hist.saturating_record(value);
    }
}
