//! The operator subcommands of the `isr-proxy` binary: `revalidate`, `inspect`, `stats` and `health`. They talk
//! HTTP to a running proxy (the admin listener, or the public listener's revalidation endpoint) through
//! [`crate::admin::client`], reading the same types the server writes, and print text for people ([`format`])
//! or the JSON as it came (`--json`).
//!
//! `main.rs` only parses arguments and runs [`run`]; what succeeded decides the exit status ([`Outcome`]).

mod format;

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::admin::api::{CacheListing, EntryDetail, Health, Regenerations, Stats};
use crate::admin::client::{ApiClient, ClientError};
use crate::config::{DEFAULT_REVALIDATE_PATH, DEFAULT_TOKEN_ENV};
use crate::revalidate::{PathResult, RevalidateReport, RevalidateRequest};

/// Where the admin listener is unless `--admin-url` or `ISR_ADMIN_URL` says otherwise (the address the docs
/// and the deploy files use).
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9091";
/// Where the public listener is unless `--url` or `ISR_PROXY_URL` says otherwise (`listen`'s default).
pub const DEFAULT_PROXY_URL: &str = "http://127.0.0.1:3000";

/// The operator subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Regenerate pages now, mark tagged pages stale, or purge them, through the revalidation endpoint.
    #[command(after_help = REVALIDATE_EXAMPLES)]
    Revalidate(RevalidateArgs),
    /// List the cached pages, show one in full, or show regenerations (admin listener).
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Print the hit ratio, cache size, regenerations and Redis state (admin listener).
    #[command(after_help = STATS_EXAMPLES)]
    Stats(StatsArgs),
    /// Probe `/health`: exit 0 if the proxy serves, 1 if not or unreachable (for container health checks).
    #[command(after_help = HEALTH_EXAMPLES)]
    Health(HealthArgs),
}

const REVALIDATE_EXAMPLES: &str = "Examples:
  export ISR_REVALIDATE_TOKEN=change-me     # the token the proxy was started with
  isr-proxy revalidate --path /blog/hello --path /
  isr-proxy revalidate --tag posts --url http://127.0.0.1:3000
  isr-proxy revalidate --prefix /blog          # /blog and everything under /blog/
  isr-proxy revalidate --path /blog/old --purge

Prints one line per path, tag and prefix; exits 0 only if every path succeeded.";

const INSPECT_EXAMPLES: &str = "Examples:
  isr-proxy inspect --prefix /blog/ --state stale
  isr-proxy inspect --tag post-42 --json
  isr-proxy inspect --path /blog/hello        # one page: headers, route, last regeneration, next retry
  isr-proxy inspect --regenerations           # running and recently failed regenerations
  isr-proxy inspect --admin-url http://localhost:9091 --limit 500 --cursor '<next_cursor>'";

const STATS_EXAMPLES: &str = "Examples:
  isr-proxy stats
  isr-proxy stats --admin-url http://127.0.0.1:9091 --json";

const HEALTH_EXAMPLES: &str = "Examples:
  isr-proxy health --admin-url http://127.0.0.1:9091
  HEALTHCHECK CMD [\"isr-proxy\", \"health\", \"--admin-url\", \"http://127.0.0.1:9091\"]";

/// Where the admin listener is.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin listener (`[admin] listen`).
    #[arg(long, env = "ISR_ADMIN_URL", default_value = DEFAULT_ADMIN_URL)]
    pub admin_url: String,
    /// Give up after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `isr-proxy revalidate`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["paths", "tags", "prefixes"])))]
pub struct RevalidateArgs {
    /// A path to regenerate now (or purge); repeatable.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// A tag whose pages to mark stale (or purge); repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// A path prefix whose pages to mark stale (or purge), by whole segments: `/blog` is `/blog` and everything
    /// under `/blog/`, never `/blog-old`; repeatable.
    #[arg(long = "prefix", value_name = "PREFIX")]
    pub prefixes: Vec<String>,
    /// Remove the pages instead (the next request is a MISS).
    #[arg(long)]
    pub purge: bool,
    /// The site whose pages and tags are meant (routes with `host`); a path may also be a full URL.
    #[arg(long)]
    pub host: Option<String>,
    /// The proxy's public listener (`listen`).
    #[arg(long, env = "ISR_PROXY_URL", default_value = DEFAULT_PROXY_URL)]
    pub url: String,
    /// The endpoint's path (`revalidate.path`).
    #[arg(long, default_value = DEFAULT_REVALIDATE_PATH)]
    pub endpoint: String,
    /// The environment variable holding the token (`revalidate.token_env`).
    #[arg(long, default_value = DEFAULT_TOKEN_ENV)]
    pub token_env: String,
    /// Give up after this long (a regeneration waits for the origin).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// A page's state, for `--state`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    /// Served as is.
    Fresh,
    /// Served while it regenerates.
    Stale,
    /// The next request waits for the origin.
    Expired,
}

/// `isr-proxy inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Only pages whose path starts with this.
    #[arg(long, conflicts_with_all = ["path", "regenerations"])]
    pub prefix: Option<String>,
    /// Only pages carrying this tag.
    #[arg(long, conflicts_with_all = ["path", "regenerations"])]
    pub tag: Option<String>,
    /// Only pages in this state.
    #[arg(long, value_enum, conflicts_with_all = ["path", "regenerations"])]
    pub state: Option<StateArg>,
    /// Pages per call (1 to 1000).
    #[arg(long, default_value_t = 50, conflicts_with_all = ["path", "regenerations"])]
    pub limit: usize,
    /// Continue from a previous listing's next cursor.
    #[arg(long, conflicts_with_all = ["path", "regenerations"])]
    pub cursor: Option<String>,
    /// Show this page in full instead (may carry its `?query`).
    #[arg(long, conflicts_with = "regenerations")]
    pub path: Option<String>,
    /// With `--path`: a variant header, `name:value` (e.g. `rsc:1`); repeatable.
    #[arg(long = "variant", value_name = "NAME:VALUE", requires = "path")]
    pub variants: Vec<String>,
    /// Show running and recently failed regenerations instead.
    #[arg(long)]
    pub regenerations: bool,
    /// Print the JSON document as the admin listener sent it.
    #[arg(long)]
    pub json: bool,
    /// Where the admin listener is.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `isr-proxy stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print the JSON document as the admin listener sent it.
    #[arg(long)]
    pub json: bool,
    /// Where the admin listener is.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `isr-proxy health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Where the admin listener is.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Whether a subcommand did what was asked (exit status 0) or reported a failure it printed (exit status 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything succeeded.
    Succeeded,
    /// Something failed; what was printed says what.
    Failed,
}

/// Why a subcommand could not do its job at all.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The admin listener did not answer.
    #[error("{0}; is isr-proxy running, with `[admin] listen` on that address? (--admin-url, ISR_ADMIN_URL)")]
    AdminUnreachable(ClientError),
    /// The public listener did not answer.
    #[error("{0}; is isr-proxy listening there? (--url, ISR_PROXY_URL)")]
    ProxyUnreachable(ClientError),
    /// An answer that is not what was asked for.
    #[error("{0}")]
    Answer(ClientError),
    /// No token to authenticate with.
    #[error(
        "no revalidation token: the environment variable {env} is empty or not set (the proxy reads its token from the variable named by `revalidate.token_env`; pass another with --token-env)"
    )]
    NoToken {
        /// The variable.
        env: String,
    },
    /// The proxy refused the token.
    #[error("the proxy refused the token in {env} (401): it differs from the one the proxy was started with")]
    Unauthorized {
        /// The variable.
        env: String,
    },
    /// No endpoint at that path.
    #[error(
        "{url} answered 404: on-demand revalidation is disabled on the proxy (no token in its environment) or --endpoint is not `revalidate.path`"
    )]
    NoEndpoint {
        /// The URL called.
        url: String,
    },
    /// Printing failed (a closed pipe is not reported).
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

/// By hand rather than `#[from]`, which would make the error a source too and print it twice.
impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        Self::Output(err)
    }
}

/// Runs one subcommand, printing to `out`.
pub async fn run(command: Command, out: &mut impl Write) -> Result<Outcome, CliError> {
    match command {
        Command::Revalidate(args) => revalidate(args, out).await,
        Command::Inspect(args) => inspect(args, out).await,
        Command::Stats(args) => stats(args, out).await,
        Command::Health(args) => health(args, out).await,
    }
}

/// A client for the admin listener, with errors that say where it was looked for.
struct Admin(ApiClient);

impl Admin {
    fn new(args: &AdminArgs) -> Result<Self, CliError> {
        ApiClient::new(&args.admin_url, args.timeout)
            .map(Self)
            .map_err(CliError::Answer)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path_and_query: &str) -> Result<(T, String), CliError> {
        let answer = self.0.get(path_and_query).await.map_err(admin_error)?;
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        Ok((answer.success().map_err(CliError::Answer)?, text))
    }
}

fn admin_error(err: ClientError) -> CliError {
    match err {
        ClientError::Unreachable { .. } | ClientError::Timeout { .. } => CliError::AdminUnreachable(err),
        other => CliError::Answer(other),
    }
}

async fn revalidate(args: RevalidateArgs, out: &mut impl Write) -> Result<Outcome, CliError> {
    let token = std::env::var(&args.token_env).unwrap_or_default();
    if token.is_empty() {
        return Err(CliError::NoToken { env: args.token_env });
    }
    let client = ApiClient::new(&args.url, args.timeout).map_err(CliError::Answer)?;
    let request = RevalidateRequest {
        paths: args.paths,
        tags: args.tags,
        prefixes: args.prefixes,
        purge: args.purge,
        host: args.host,
    };
    let answer = client
        .post_json(&args.endpoint, &token, &request)
        .await
        .map_err(|err| match err {
            ClientError::Unreachable { .. } | ClientError::Timeout { .. } => CliError::ProxyUnreachable(err),
            other => CliError::Answer(other),
        })?;
    let report: RevalidateReport = match answer.status.as_u16() {
        // 502 carries the same report, with the paths that failed.
        200 | 502 => answer.json().map_err(CliError::Answer)?,
        401 => return Err(CliError::Unauthorized { env: args.token_env }),
        404 => return Err(CliError::NoEndpoint { url: answer.url }),
        _ => answer.success().map_err(CliError::Answer)?,
    };
    out.write_all(format::report(&report, request.purge).as_bytes())?;
    let failed = report
        .paths
        .values()
        .any(|result| matches!(result, PathResult::Error { .. }));
    Ok(if failed || !report.revalidated {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    })
}

async fn inspect(args: InspectArgs, out: &mut impl Write) -> Result<Outcome, CliError> {
    let admin = Admin::new(&args.admin)?;
    if args.regenerations {
        let (regenerations, text) = admin.get::<Regenerations>("/regenerations").await?;
        return print(out, args.json, &text, || format::regenerations(&regenerations));
    }
    if let Some(path) = &args.path {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("path", path);
        for variant in &args.variants {
            query.append_pair("variant", variant);
        }
        let (entry, text) = admin
            .get::<EntryDetail>(&format!("/cache/entry?{}", query.finish()))
            .await?;
        return print(out, args.json, &text, || format::entry(&entry));
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &args.limit.to_string());
    for (name, value) in [
        ("prefix", args.prefix.as_deref()),
        ("tag", args.tag.as_deref()),
        ("state", args.state.map(state_word)),
        ("cursor", args.cursor.as_deref()),
    ] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let (listing, text) = admin.get::<CacheListing>(&format!("/cache?{}", query.finish())).await?;
    let counted = if args.tag.is_some() { "tagged" } else { "in memory" };
    print(out, args.json, &text, || format::listing(&listing, counted))
}

fn state_word(state: StateArg) -> &'static str {
    match state {
        StateArg::Fresh => "fresh",
        StateArg::Stale => "stale",
        StateArg::Expired => "expired",
    }
}

async fn stats(args: StatsArgs, out: &mut impl Write) -> Result<Outcome, CliError> {
    let admin = Admin::new(&args.admin)?;
    let (stats, text) = admin.get::<Stats>("/stats").await?;
    print(out, args.json, &text, || format::stats(&stats))
}

async fn health(args: HealthArgs, out: &mut impl Write) -> Result<Outcome, CliError> {
    let admin = Admin::new(&args.admin)?;
    // 503 carries a health document too (prerendering): read it whatever the status.
    let answer = admin.0.get("/health").await.map_err(admin_error)?;
    let health: Health = answer.json().map_err(CliError::Answer)?;
    out.write_all(format::health(&health).as_bytes())?;
    Ok(if health.ok && answer.status.is_success() {
        Outcome::Succeeded
    } else {
        Outcome::Failed
    })
}

/// Prints the JSON as received (`--json`) or the text `render` makes.
fn print(
    out: &mut impl Write,
    json: bool,
    received: &str,
    render: impl FnOnce() -> String,
) -> Result<Outcome, CliError> {
    if json {
        writeln!(out, "{received}")?;
    } else {
        out.write_all(render().as_bytes())?;
    }
    Ok(Outcome::Succeeded)
}
