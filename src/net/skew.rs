//! A machine's clock relative to true (virtual) time.

/// Constant offset and rate error of a machine's clock (simulated machines
/// only; real clocks are what they are).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClockSkew {
    /// Constant offset, in milliseconds.
    #[serde(default)]
    pub offset_ms: f64,
    /// Rate error in parts per million (100 → 0.01% fast).
    #[serde(default)]
    pub drift_ppm: f64,
}

impl ClockSkew {
    pub fn is_zero(&self) -> bool {
        self.offset_ms == 0.0 && self.drift_ppm == 0.0
    }

    /// This clock's reading at true time `true_ns`.
    pub fn local(&self, true_ns: u64) -> u64 {
        let t = true_ns as f64 * (1.0 + self.drift_ppm * 1e-6) + self.offset_ms * 1e6;
        t.max(0.0) as u64
    }

    /// True time for `local_ns` to pass on this clock.
    pub fn true_delay(&self, local_ns: u64) -> u64 {
        (local_ns as f64 / (1.0 + self.drift_ppm * 1e-6)) as u64
    }
}
