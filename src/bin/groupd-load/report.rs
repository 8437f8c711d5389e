//! The figures of a run, printed as tables and written as JSON.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    cli::Kind,
    procfs::Usage,
    run::Measured,
    stats::{Figures, KindTally},
};

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: String,
    /// `debug` or `release`: a debug build of the tool is much slower.
    pub build: &'static str,
    pub target: String,
    pub connections: u32,
    pub streams: u32,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    pub mix: String,
    pub dataset: DatasetReport,
    /// The calls to groupd.
    pub groupd: Measurement,
    pub ceilings: Vec<Ceiling>,
}

#[derive(Debug, Serialize)]
pub struct DatasetReport {
    pub name: String,
    pub groups: u32,
    pub principals: u32,
    pub chain_levels: usize,
    /// Closed-loop tasks, each with an update group and an add group of
    /// its own.
    pub tasks: usize,
    /// The dataset's groups on the server, and how many this run created.
    pub size: usize,
    pub created: usize,
}

/// One measurement: per call kind, all kinds together, and the processes'
/// use of CPU and memory.
#[derive(Debug, Serialize)]
pub struct Measurement {
    pub kinds: BTreeMap<&'static str, Figures>,
    pub all: Figures,
    /// The server process (`--server-pid`), over the measured window.
    pub server: Option<Usage>,
    /// This process, over the measured window.
    pub client: Option<Usage>,
}

impl Measurement {
    pub fn of(measured: Measured) -> Self {
        let mut all = KindTally::default();
        let mut kinds = BTreeMap::new();
        for kind in Kind::ALL {
            if let Some(tally) = measured.tally.kinds.get(&kind) {
                all.merge(tally.clone());
                kinds.insert(kind.key(), Figures::of(tally.clone(), measured.window));
            }
        }
        Self {
            kinds,
            all: Figures::of(all, measured.window),
            server: measured.server,
            client: measured.client,
        }
    }

    pub fn failures(&self) -> u64 {
        self.all.failures()
    }
}

/// A ceiling and the measured figures as ratios to it.
#[derive(Debug, Serialize)]
pub struct Ceiling {
    /// `echo` or `database`.
    pub name: &'static str,
    pub description: String,
    pub measured: Measurement,
    /// groupd's figures divided by this ceiling's, per call kind and for
    /// all kinds: requests/s as a share of the ceiling's, latencies as
    /// multiples of the ceiling's. Kinds the ceiling has no figure for are
    /// left out.
    pub ratios: BTreeMap<&'static str, Ratios>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub requests_per_second: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
}

impl Ratios {
    fn of(groupd: &Figures, ceiling: &Figures) -> Self {
        let divide = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        Self {
            requests_per_second: divide(
                Some(groupd.requests_per_second),
                Some(ceiling.requests_per_second),
            ),
            p50: divide(groupd.p50_ms, ceiling.p50_ms),
            p99: divide(groupd.p99_ms, ceiling.p99_ms),
            p999: divide(groupd.p999_ms, ceiling.p999_ms),
        }
    }
}

impl Ceiling {
    pub fn new(
        name: &'static str,
        description: String,
        measured: Measurement,
        groupd: &Measurement,
    ) -> Self {
        let mut ratios = BTreeMap::new();
        for (kind, figures) in &groupd.kinds {
            if let Some(ceiling) = measured.kinds.get(kind).filter(|c| c.calls > 0) {
                ratios.insert(*kind, Ratios::of(figures, ceiling));
            }
        }
        if measured.kinds.len() == groupd.kinds.len() {
            ratios.insert("all", Ratios::of(&groupd.all, &measured.all));
        }
        Self {
            name,
            description,
            measured,
            ratios,
        }
    }
}

impl Report {
    /// Failures of every measurement, warm-ups included.
    pub fn failures(&self) -> u64 {
        self.groupd.failures()
            + self
                .ceilings
                .iter()
                .map(|ceiling| ceiling.measured.failures())
                .sum::<u64>()
    }

    /// The report as text tables.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let d = &self.dataset;
        let _ = writeln!(
            out,
            "{} ({} build) against {}: {} × {} per connection, {} s measured after {} s of \
             warm-up",
            self.tool,
            self.build,
            self.target,
            counted(u64::from(self.connections), "connection"),
            counted(u64::from(self.streams), "stream"),
            self.duration_seconds,
            self.warmup_seconds
        );
        let _ = writeln!(
            out,
            "dataset {:?}: {} with {} as members, an {}-level chain, an update and an add \
             group for each of {}; {} in all, {} created by this run",
            d.name,
            counted(u64::from(d.groups), "group"),
            counted(u64::from(d.principals), "principal"),
            d.chain_levels,
            counted(d.tasks as u64, "task"),
            counted(d.size as u64, "group"),
            d.created
        );
        let _ = writeln!(out, "mix: {}", self.mix);
        let _ = writeln!(out);
        table(&mut out, "groupd", &self.groupd);
        usage(&mut out, &self.groupd);
        for ceiling in &self.ceilings {
            let _ = writeln!(out);
            let title = format!("ceiling: {}", ceiling.description);
            table(&mut out, &title, &ceiling.measured);
            usage(&mut out, &ceiling.measured);
        }
        if !self.ceilings.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "groupd as a ratio to each ceiling (req/s: the share of the ceiling's; \
                 latencies: multiples of the ceiling's)"
            );
            let _ = write!(out, "{:<18}", "");
            for ceiling in &self.ceilings {
                let _ = write!(
                    out,
                    "  {:>8} {:>7} {:>7} {:>7}",
                    format!("{} req/s", ceiling.name),
                    "p50",
                    "p99",
                    "p99.9"
                );
            }
            let _ = writeln!(out);
            let rows = Kind::ALL
                .into_iter()
                .filter(|kind| self.groupd.kinds.contains_key(kind.key()))
                .map(|kind| (kind.key(), kind.rpc()))
                .chain([("all", "all kinds")]);
            for (key, label) in rows {
                let _ = write!(out, "{label:<18}");
                for ceiling in &self.ceilings {
                    match ceiling.ratios.get(key) {
                        Some(r) => {
                            let _ = write!(
                                out,
                                "  {:>w$} {:>7} {:>7} {:>7}",
                                share(r.requests_per_second),
                                times(r.p50),
                                times(r.p99),
                                times(r.p999),
                                w = ceiling.name.len() + 6
                            );
                        }
                        None => {
                            let _ = write!(
                                out,
                                "  {:>w$} {:>7} {:>7} {:>7}",
                                "-",
                                "",
                                "",
                                "",
                                w = ceiling.name.len() + 6
                            );
                        }
                    }
                }
                let _ = writeln!(out);
            }
        }
        let failures = self.failure_lines();
        if !failures.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "FAILED CALLS (warm-up included):");
            out.push_str(&failures);
        }
        out
    }

    fn failure_lines(&self) -> String {
        let mut out = String::new();
        let measurements = std::iter::once(("groupd", &self.groupd)).chain(
            self.ceilings
                .iter()
                .map(|ceiling| (ceiling.name, &ceiling.measured)),
        );
        for (name, measurement) in measurements {
            for (kind, figures) in &measurement.kinds {
                for (code, count) in &figures.not_ok {
                    let message = figures
                        .not_ok_messages
                        .get(code)
                        .map(String::as_str)
                        .unwrap_or("");
                    let _ = writeln!(
                        out,
                        "  {name} {}: {count} × not OK, {code} (first: {message:?})",
                        rpc_of(kind)
                    );
                }
                for (what, count) in &figures.wrong {
                    let _ = writeln!(out, "  {name} {}: {count} × wrong: {what}", rpc_of(kind));
                }
            }
        }
        out
    }
}

fn rpc_of(key: &str) -> &'static str {
    Kind::ALL
        .into_iter()
        .find(|kind| kind.key() == key)
        .map_or("?", Kind::rpc)
}

fn table(out: &mut String, title: &str, measurement: &Measurement) {
    let _ = writeln!(out, "{title}");
    let _ = writeln!(
        out,
        "{:<18} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7} {:>6}",
        "call", "calls", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "not OK", "wrong"
    );
    let rows = Kind::ALL
        .into_iter()
        .filter_map(|kind| Some((kind.rpc(), measurement.kinds.get(kind.key())?)))
        .chain((measurement.kinds.len() > 1).then_some(("all kinds", &measurement.all)));
    for (label, f) in rows {
        let _ = writeln!(
            out,
            "{label:<18} {:>9} {:>10.1} {:>9} {:>9} {:>9} {:>7} {:>6}",
            f.calls,
            f.requests_per_second,
            millis(f.p50_ms),
            millis(f.p99_ms),
            millis(f.p999_ms),
            f.not_ok.values().sum::<u64>(),
            f.wrong.values().sum::<u64>()
        );
    }
}

fn usage(out: &mut String, measurement: &Measurement) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    if let Some(server) = &measurement.server {
        let _ = writeln!(
            out,
            "server (pid {}): {:.2} CPU seconds/s; RSS peak {:.1} MiB in the window, {:.1} MiB \
             since it started (VmHWM)",
            server.pid,
            server.cpu_seconds_per_second,
            mib(server.rss_peak_bytes),
            mib(server.rss_high_water_bytes)
        );
    }
    if let Some(client) = &measurement.client {
        let _ = writeln!(
            out,
            "this tool: {:.2} CPU seconds/s; RSS peak {:.1} MiB",
            client.cpu_seconds_per_second,
            mib(client.rss_peak_bytes)
        );
    }
}

/// `count` and `noun`, plural unless one.
fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn millis(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.3}"))
}

fn share(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.3}"))
}

fn times(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.1}×"))
}
