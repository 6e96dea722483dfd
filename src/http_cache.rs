//! HTTP caching as RFC 9111 (with RFC 5861's stale extensions and RFC 9213's `CDN-Cache-Control`) defines it, for
//! `revalidate = "origin"` routes: pure rules over headers and times, table-tested from the RFCs' text.
//!
//! - [`directives`]: `Cache-Control` (response and request) and `CDN-Cache-Control` parsing;
//! - [`freshness`]: whether a response may be stored, its freshness lifetime and age (§3, §4.2), and whether a
//!   stored response may be reused for a request (§4.2, §4.2.4, §5.2.1);
//! - [`vary`]: the secondary cache key (§4.1);
//! - [`conditional`]: validation (§4.3): conditional requests to the origin, 304 handling, and conditional
//!   requests from clients;
//! - [`range`]: single byte ranges served from a stored complete response (RFC 9110 §14).
//!
//! Time-based routes do not use this module: their freshness is the route's rule (see [`crate::cacheability`]).
//! Nothing here does I/O or reads a clock; callers pass times in.

pub mod conditional;
pub mod directives;
pub mod freshness;
pub mod range;
pub mod vary;

pub use conditional::{ClientConditional, origin_validators};
pub use directives::{RequestDirectives, ResponseDirectives};
pub use freshness::{OnError, Reuse, StoreDecision, judge, reuse};
pub use range::ByteRange;
pub use vary::{Vary, selecting_values};
