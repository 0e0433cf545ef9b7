//! Fault injection: which request gets which failure, decided from a seed so a
//! run repeats exactly. A fault hits the same request (method + URL) at most
//! [`FaultPlan::max_per_request`] times unless the plan is permanent, so a
//! client that retries gets through. This module decides; `respond` applies.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::MockError;

/// A fault the mock can inject into one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// 429 Too Many Requests with `Retry-After`.
    TooManyRequests,
    /// 500 with an OperationOutcome.
    ServerError,
    /// 503 with an OperationOutcome and `Retry-After`.
    Unavailable,
    /// 200 whose body is cut in half (with a matching Content-Length: valid HTTP, broken JSON).
    Truncate,
    /// The connection ends mid-body: `Content-Length` announces the whole body but only
    /// half is sent, so the server closes the connection early (wiremock cannot drop a
    /// socket outright; the client sees the same "connection closed before message
    /// completed" error).
    Drop,
    /// A search page that starts with the previous page's last entry again.
    RepeatLast,
    /// The access token stopped working (401); see [`FaultPlan::token_expiry`].
    TokenExpired,
}

impl Fault {
    /// The name used in fault specs and the journal.
    pub fn name(self) -> &'static str {
        match self {
            Fault::TooManyRequests => "429",
            Fault::ServerError => "500",
            Fault::Unavailable => "503",
            Fault::Truncate => "truncate",
            Fault::Drop => "drop",
            Fault::RepeatLast => "repeat-last",
            Fault::TokenExpired => "token-expiry",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which faults to inject, how often, and the seed.
///
/// Parsed from specs like `429:0.1,503:0.05,truncate:0.05,drop:0.02,latency:20ms,token-expiry:50,repeat-last:0.1,seed=7`;
/// also `500:P`, `max:K` (a fault hits one request at most K times; default 2) and
/// `permanent` (no limit: retrying never helps).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Probability per request of each fault (repeat-last applies to paging requests only).
    pub rates: Vec<(Fault, f64)>,
    /// Added to every response.
    pub latency: Duration,
    /// Access tokens stop working after this many uses (401 `invalid_token`).
    pub token_expiry: Option<u32>,
    /// The seed of every decision.
    pub seed: u64,
    /// How many times at most one request (method + URL) gets a fault.
    pub max_per_request: u32,
    /// Faults never stop: `max_per_request` is ignored.
    pub permanent: bool,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            rates: Vec::new(),
            latency: Duration::ZERO,
            token_expiry: None,
            seed: 0,
            max_per_request: 2,
            permanent: false,
        }
    }
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds `fault` with probability `rate` (0..=1).
    #[must_use]
    pub fn with(mut self, fault: Fault, rate: f64) -> Self {
        self.rates.retain(|(f, _)| *f != fault);
        self.rates.push((fault, rate.clamp(0.0, 1.0)));
        self
    }

    /// Sets the seed. Default is 0.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the latency added to every response. Default is none.
    #[must_use]
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Tokens stop working after `uses` requests. Default is never.
    #[must_use]
    pub fn token_expiry(mut self, uses: u32) -> Self {
        self.token_expiry = Some(uses);
        self
    }

    /// A fault hits one request at most `k` times. Default is 2.
    #[must_use]
    pub fn max_per_request(mut self, k: u32) -> Self {
        self.max_per_request = k;
        self
    }

    /// Faults never stop for a request: retrying does not help. Default is off.
    #[must_use]
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }
}

impl FromStr for FaultPlan {
    type Err = MockError;
    fn from_str(spec: &str) -> Result<Self, MockError> {
        let mut plan = FaultPlan::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |reason: &'static str| MockError::FaultSpec {
                part: part.to_string(),
                reason,
            };
            if part == "permanent" {
                plan.permanent = true;
                continue;
            }
            let (key, value) = part.split_once([':', '=']).ok_or_else(|| bad("expected NAME:VALUE"))?;
            let fault = match key {
                "429" => Some(Fault::TooManyRequests),
                "500" => Some(Fault::ServerError),
                "503" => Some(Fault::Unavailable),
                "truncate" => Some(Fault::Truncate),
                "drop" => Some(Fault::Drop),
                "repeat-last" => Some(Fault::RepeatLast),
                _ => None,
            };
            if let Some(fault) = fault {
                let rate: f64 = value.parse().map_err(|_| bad("rate must be a number"))?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(bad("rate must be between 0 and 1"));
                }
                plan = plan.with(fault, rate);
                continue;
            }
            match key {
                "latency" => plan.latency = parse_duration(value).ok_or_else(|| bad("latency like 20ms or 1s"))?,
                "token-expiry" => plan.token_expiry = Some(value.parse().map_err(|_| bad("a request count"))?),
                "seed" => plan.seed = value.parse().map_err(|_| bad("seed must be a whole number"))?,
                "max" => plan.max_per_request = value.parse().map_err(|_| bad("max must be a whole number"))?,
                _ => return Err(bad("unknown fault")),
            }
        }
        Ok(plan)
    }
}

fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.trim().parse().ok().map(Duration::from_millis);
    }
    s.strip_suffix('s')
        .unwrap_or(s)
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| *v >= 0.0)
        .map(Duration::from_secs_f64)
}

/// What the plan has done so far: attempts and faults per request key.
#[derive(Debug, Default)]
pub struct FaultState {
    attempts: HashMap<String, u64>,
    applied: HashMap<String, u32>,
}

impl FaultState {
    /// The fault (if any) for this attempt at `key` (method + URL). `paging` says whether
    /// repeat-last can apply.
    pub fn decide(&mut self, plan: &FaultPlan, key: &str, paging: bool) -> Option<Fault> {
        let attempt = self.attempts.entry(key.to_string()).or_insert(0);
        *attempt += 1;
        let applied = self.applied.entry(key.to_string()).or_insert(0);
        if !plan.permanent && *applied >= plan.max_per_request {
            return None;
        }
        let roll = unit(mix(plan.seed, key, *attempt));
        let mut cumulative = 0.0;
        let mut chosen = None;
        for (fault, rate) in &plan.rates {
            if *fault == Fault::RepeatLast && !paging {
                continue;
            }
            cumulative += rate;
            if roll < cumulative {
                chosen = Some(*fault);
                break;
            }
        }
        if chosen.is_some() {
            *applied += 1;
        }
        chosen
    }
}

/// A 64-bit hash of the seed, a key and a counter (FNV-1a then splitmix64): stable across runs.
pub fn mix(seed: u64, key: &str, n: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in key.bytes().chain(n.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_spec() {
        let plan: FaultPlan =
            "429:0.1,503:0.05,truncate:0.05,drop:0.02,latency:20ms,token-expiry:50,repeat-last:0.1,seed=7"
                .parse()
                .unwrap();
        assert_eq!(plan.rates.len(), 5);
        assert_eq!(plan.latency, Duration::from_millis(20));
        assert_eq!(plan.token_expiry, Some(50));
        assert_eq!(plan.seed, 7);
        assert!("429:2".parse::<FaultPlan>().is_err());
        assert!("teapot:0.1".parse::<FaultPlan>().is_err());
    }

    #[test]
    fn a_fault_stops_after_max_per_request_unless_permanent() {
        let plan = FaultPlan::none().with(Fault::Unavailable, 1.0);
        let mut state = FaultState::default();
        let got: Vec<_> = (0..4).map(|_| state.decide(&plan, "GET /x", false)).collect();
        assert_eq!(
            got,
            vec![Some(Fault::Unavailable), Some(Fault::Unavailable), None, None]
        );
        let mut state = FaultState::default();
        let plan = plan.permanent();
        assert!((0..10).all(|_| state.decide(&plan, "GET /x", false).is_some()));
    }

    #[test]
    fn decisions_repeat_with_the_same_seed() {
        let plan = FaultPlan::none().with(Fault::TooManyRequests, 0.3).seed(7);
        let run = || {
            let mut s = FaultState::default();
            (0..50)
                .map(|i| s.decide(&plan, &format!("GET /{i}"), false))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert!(run().iter().any(Option::is_some) && run().iter().any(Option::is_none));
    }
}
