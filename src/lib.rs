//! isr-proxy: Incremental Static Regeneration for any server-rendered origin.
//!
//! A request is matched against the route table ([`route`]); unmatched paths stream through to the origin.
//! A cached route's page is looked up in the [`cache`] under its [`cache::CacheKey`]: a fresh page is a HIT; an
//! older one is served at once (STALE) while [`regen`] runs one background regeneration; a missing one is
//! fetched once for all concurrent requests (single-flight) and stored if [`cacheability`] allows. [`proxy`]
//! reads top-down as that flow; [`server`] only accepts connections; `main.rs` only parses arguments.
//! The [`admin`] listener shows what is inside; [`cli`] is the operator subcommands that read it.
pub mod admin;
pub mod cache;
pub mod cache_status;
pub mod cacheability;
pub mod cli;
pub mod clock;
pub mod compression;
pub mod config;
pub mod http_cache;
pub mod listener;
pub mod metrics;
pub mod origin;
pub mod prerender;
pub mod proxy;
pub mod regen;
pub mod reload;
pub mod response;
pub mod revalidate;
pub mod route;
pub mod server;

pub use admin::{run_admin, run_admin_live};
pub use clock::{Clock, ClockHandle};
pub use config::Config;
pub use proxy::Proxy;
pub use reload::{LiveProxy, Reloader};
pub use server::{Listening, run, run_live, run_with_limits};
