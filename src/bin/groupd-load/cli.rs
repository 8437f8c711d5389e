//! The command line: flags, the call mix and durations.

use std::{fmt, path::PathBuf, time::Duration};

use clap::Parser;
use groupd::config::{parse_duration, parse_positive_duration};

/// Drives a running groupd with a closed-loop mix of calls, checks every
/// reply, and prints throughput and latency per call kind; optionally
/// measures the ceilings the figures are compared with.
#[derive(Debug, Parser)]
#[command(name = "groupd-load", version)]
pub struct Args {
    /// The groupd gRPC endpoint (plaintext HTTP/2).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub target: String,

    /// A bearer token sent with every call, for servers with
    /// authentication on. It must be allowed to create groups and to read
    /// every membership (groups.admin).
    #[arg(long, env = "GROUPD_LOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// HTTP/2 connections to the target.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: u32,

    /// Concurrent closed-loop tasks per connection, each waiting for its
    /// reply before its next call.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub streams: u32,

    /// How long each measurement lasts (e.g. 500ms, 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub duration: Duration,

    /// How long each measurement runs before it starts counting.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Relative weights of the call kinds: get (GetGroup, BASIC view),
    /// list (ListGroups, pages of 50), check (transitive CheckMembership
    /// at the bottom of an 8-level chain), member-groups (transitive
    /// ListMemberGroups), update (UpdateGroup of one field), add
    /// (AddGroupMembers of one new principal). Kinds left out weigh 0.
    #[arg(long, default_value = "get=1", value_parser = Mix::parse)]
    pub mix: Mix,

    /// The dataset's name: groups the tool created are labelled
    /// `load=<name>` and found again by that label, so later runs reuse
    /// them. Letters, digits, `.`, `_` and `-`.
    #[arg(long, default_value = "load", value_parser = parse_dataset_name)]
    pub dataset: String,

    /// Groups in the dataset (besides the chain and the tasks' own
    /// groups).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub groups: u32,

    /// Principals spread as members over the dataset's groups.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub principals: u32,

    /// The groupd process, to report its CPU seconds per second and its
    /// resident memory from /proc (Linux only).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Also measure the ceilings, in the same run: a no-op gRPC call to an
    /// echo server this tool starts on loopback, and the database work of
    /// each call kind done directly on --database-url.
    #[arg(long, requires = "database_url")]
    pub ceilings: bool,

    /// The database the server uses, for the database ceiling (from the
    /// environment, a password stays out of the process list).
    #[arg(long, env = "GROUPD_LOAD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Pooled connections of the database ceiling: give it the server's
    /// --db-max-connections.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub database_connections: u32,

    /// Ask CheckMembership and ListMemberGroups to read the database
    /// (`fully_consistent`) rather than the server's membership index.
    #[arg(long)]
    pub fully_consistent: bool,

    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl Args {
    /// How many closed-loop tasks each measurement runs.
    pub fn tasks(&self) -> usize {
        (self.connections as usize) * (self.streams as usize)
    }
}

/// A kind of call the tool makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Get,
    List,
    Check,
    MemberGroups,
    Update,
    Add,
}

impl Kind {
    /// Every kind, in the order they are printed.
    pub const ALL: [Self; 6] = [
        Self::Get,
        Self::List,
        Self::Check,
        Self::MemberGroups,
        Self::Update,
        Self::Add,
    ];

    /// The kind's name in `--mix`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Check => "check",
            Self::MemberGroups => "member-groups",
            Self::Update => "update",
            Self::Add => "add",
        }
    }

    /// The RPC the kind calls.
    pub fn rpc(self) -> &'static str {
        match self {
            Self::Get => "GetGroup",
            Self::List => "ListGroups",
            Self::Check => "CheckMembership",
            Self::MemberGroups => "ListMemberGroups",
            Self::Update => "UpdateGroup",
            Self::Add => "AddGroupMembers",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Get => 0,
            Self::List => 1,
            Self::Check => 2,
            Self::MemberGroups => 3,
            Self::Update => 4,
            Self::Add => 5,
        }
    }
}

/// The weight of each call kind; at least one is not zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 6],
}

impl Mix {
    /// Parses `kind=weight` pairs separated by commas, such as
    /// `get=8,update=1`. Kinds left out weigh 0; a kind named twice, an
    /// unknown kind, a weight that is not a whole number, and a mix whose
    /// weights are all 0 are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut weights = [0u32; 6];
        let mut named = [false; 6];
        for pair in text
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let (key, weight) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not kind=weight"))?;
            let kind = Kind::ALL
                .into_iter()
                .find(|kind| kind.key() == key.trim())
                .ok_or_else(|| {
                    format!(
                        "unknown call kind `{}`; the kinds are {}",
                        key.trim(),
                        Kind::ALL.map(Kind::key).join(", ")
                    )
                })?;
            let weight: u32 = weight.trim().parse().map_err(|_| {
                format!(
                    "the weight of {} is `{}`, not a whole number",
                    kind.key(),
                    weight.trim()
                )
            })?;
            if std::mem::replace(&mut named[kind.index()], true) {
                return Err(format!("{} is named twice", kind.key()));
            }
            weights[kind.index()] = weight;
        }
        if weights.iter().all(|weight| *weight == 0) {
            return Err("every weight is 0: give at least one kind a weight".to_owned());
        }
        Ok(Self { weights })
    }

    /// The weight of `kind`.
    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights[kind.index()]
    }

    /// The kinds with a weight, in [`Kind::ALL`] order.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL.into_iter().filter(|kind| self.weight(*kind) > 0)
    }

    /// The kind that `roll`, drawn uniformly from `0..self.total()`,
    /// stands for: each kind owns a run of values as long as its weight.
    pub fn pick(&self, roll: u64) -> Kind {
        let mut left = roll;
        for kind in Kind::ALL {
            let weight = u64::from(self.weight(kind));
            if left < weight {
                return kind;
            }
            left -= weight;
        }
        // Only reached for a roll past the total: the last kind weighed.
        self.kinds().last().unwrap_or(Kind::Get)
    }

    /// The sum of the weights.
    pub fn total(&self) -> u64 {
        self.weights.iter().map(|weight| u64::from(*weight)).sum()
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = Kind::ALL
            .into_iter()
            .map(|kind| format!("{}={}", kind.key(), self.weight(kind)))
            .collect();
        f.write_str(&pairs.join(","))
    }
}

/// A dataset name: it becomes part of group ids and principal ids, so it
/// follows their pattern, with room left for the suffixes.
fn parse_dataset_name(text: &str) -> Result<String, String> {
    let valid = text.len() <= 64
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}`: a dataset name is 1 to 64 letters, digits, `.`, `_` or `-`, beginning \
             with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{Args, Kind, Mix, parse_duration};
    use clap::Parser as _;
    use std::time::Duration;

    #[test]
    fn a_mix_gives_each_named_kind_its_weight_and_the_others_zero() {
        let mix = Mix::parse("get=8, update=1,member-groups=2").unwrap();
        assert_eq!(mix.weight(Kind::Get), 8);
        assert_eq!(mix.weight(Kind::Update), 1);
        assert_eq!(mix.weight(Kind::MemberGroups), 2);
        assert_eq!(mix.weight(Kind::List), 0);
        assert_eq!(mix.weight(Kind::Add), 0);
        assert_eq!(mix.total(), 11);
        assert_eq!(
            mix.kinds().collect::<Vec<_>>(),
            [Kind::Get, Kind::MemberGroups, Kind::Update]
        );
        assert_eq!(
            mix.to_string(),
            "get=8,list=0,check=0,member-groups=2,update=1,add=0"
        );
        // Zero weights may be written out.
        let mix = Mix::parse("get=1,list=0,check=0,member-groups=0,update=0,add=0").unwrap();
        assert_eq!(mix.kinds().collect::<Vec<_>>(), [Kind::Get]);
    }

    #[test]
    fn a_bad_mix_is_refused_with_a_reason() {
        for (text, reason) in [
            ("get", "not kind=weight"),
            ("get=1,put=1", "unknown call kind `put`"),
            ("get=-1", "not a whole number"),
            ("get=1.5", "not a whole number"),
            ("get=", "not a whole number"),
            ("get=1,get=2", "named twice"),
            ("get=0,list=0", "every weight is 0"),
            ("", "every weight is 0"),
        ] {
            let error = Mix::parse(text).unwrap_err();
            assert!(error.contains(reason), "{text:?} gave {error:?}");
        }
    }

    #[test]
    fn picking_gives_each_kind_as_many_rolls_as_its_weight() {
        let mix = Mix::parse("get=3,check=1,add=2").unwrap();
        let picked: Vec<Kind> = (0..mix.total()).map(|roll| mix.pick(roll)).collect();
        assert_eq!(
            picked,
            [
                Kind::Get,
                Kind::Get,
                Kind::Get,
                Kind::Check,
                Kind::Add,
                Kind::Add
            ]
        );
        assert_eq!(mix.pick(99), Kind::Add);
    }

    #[test]
    fn durations_take_ms_s_and_m() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("2w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn the_flags_parse_and_bad_ones_are_refused() {
        let args = Args::try_parse_from([
            "groupd-load",
            "--connections",
            "2",
            "--streams",
            "3",
            "--mix",
            "check=1",
            "--dataset",
            "ci.1",
        ])
        .unwrap();
        assert_eq!(args.tasks(), 6);
        assert_eq!(args.mix.kinds().collect::<Vec<_>>(), [Kind::Check]);
        assert_eq!(args.duration, Duration::from_secs(10));
        for bad in [
            &["groupd-load", "--dataset", "-x"][..],
            &["groupd-load", "--dataset", "a b"],
            &["groupd-load", "--duration", "0s"],
            &["groupd-load", "--connections", "0"],
            &["groupd-load", "--mix", "get=0"],
            // The database ceiling needs the database.
            &["groupd-load", "--ceilings"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?} parsed");
        }
    }
}
