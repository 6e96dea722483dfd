//! The `tags` check: one revalidation by tag that reaches many pages, timed at the endpoint, while clients keep
//! hitting other pages.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::Error;
use crate::harness::{BULK_TAG, OriginPages, ProxySettings, client, fetch_all, start};
use crate::measure::{Percentiles, Sample, spawn_hitters};

/// Revalidations by tag timed, one after the other (the first marks every page stale, the others find them
/// stale already and do the same work).
const CALLS: usize = 5;
/// Clients hitting the untagged pages, each one request at a time.
const HITTERS: usize = 8;
/// How long the hits are measured before the first call, and the pause between calls.
const BEFORE: Duration = Duration::from_secs(2);
const GAP: Duration = Duration::from_millis(300);

pub(crate) async fn tags(tagged: usize, others: usize) -> Result<(), Error> {
    let (extra, token, token_file) = revalidate_section()?;
    let origin = OriginPages {
        tagged_below: tagged,
        ..OriginPages::plain(2048)
    };
    let settings = ProxySettings {
        extra,
        ..ProxySettings::uncompressed(4096)
    };
    let started = Instant::now();
    let started_proxy = start(origin, &settings).await;
    if let Some(file) = token_file {
        let _ = std::fs::remove_file(file);
    }
    let (_, _, base) = started_proxy?;
    let errors = fetch_all(&base, 0..tagged + others, 64).await;
    println!(
        "tags: cached {tagged} pages tagged {BULK_TAG:?} and {others} untagged ones of 2 KiB in {:.1} s ({errors} \
         errors)",
        started.elapsed().as_secs_f64()
    );

    let post = client(1);
    let mut alone = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        alone.push(revalidate_tag(&post, &base, &token).await?.0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let base_url = base.clone();
    let next = Arc::new(AtomicUsize::new(0));
    let hitters = spawn_hitters(HITTERS, &stop, move |_, _| {
        let id = tagged + next.fetch_add(1, Ordering::Relaxed) % others.max(1);
        format!("{base_url}/page/{id}")
    });
    tokio::time::sleep(BEFORE).await;
    let calls_from = Instant::now();
    let mut windows = Vec::with_capacity(CALLS);
    let mut answer = String::new();
    for _ in 0..CALLS {
        let sent = Instant::now();
        let (took, text) = revalidate_tag(&post, &base, &token).await?;
        windows.push((sent, took));
        answer = text;
        tokio::time::sleep(GAP).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (samples, misses) = hitters.await?;

    let overlaps = |(start, took): &Sample| {
        windows
            .iter()
            .any(|(sent, answer)| *start < *sent + *answer && *start + *took > *sent)
    };
    let before: Vec<Duration> = samples.iter().filter(|s| s.0 + s.1 < calls_from).map(|s| s.1).collect();
    let during: Vec<Duration> = samples.iter().filter(|s| overlaps(s)).map(|s| s.1).collect();
    println!("tags: last answer {answer}");
    println!(
        "tags: revalidation of {tagged} pages by tag answered in {} alone, {} while clients hit other pages; \
         hits on untagged pages ({HITTERS} clients, {misses} not HIT): before {}; during the calls {}",
        summary(alone),
        summary(windows.iter().map(|w| w.1).collect()),
        Percentiles::of(before),
        Percentiles::of(during),
    );
    Ok(())
}

/// `POST /_isr/revalidate?tag=bulk`: how long the answer took, and its status and body.
async fn revalidate_tag(
    post: &Client<HttpConnector, Empty<Bytes>>,
    base: &str,
    token: &str,
) -> Result<(Duration, String), Error> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/_isr/revalidate?tag={BULK_TAG}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())?;
    let sent = Instant::now();
    let response = post.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((sent.elapsed(), format!("{status} {}", String::from_utf8_lossy(&body))))
}

/// Answer times in ms, in order, with their median.
fn summary(mut answers: Vec<Duration>) -> String {
    answers.sort_unstable();
    let all: Vec<String> = answers
        .iter()
        .map(|a| format!("{:.1}", a.as_secs_f64() * 1e3))
        .collect();
    let median = answers.get(answers.len() / 2).copied().unwrap_or_default();
    format!("{} ms (median {:.1} ms)", all.join(", "), median.as_secs_f64() * 1e3)
}

/// The config's `[revalidate]` section and the token to send: `ISR_REVALIDATE_TOKEN` if set, else a random
/// token written to a temporary file (returned, to be removed once the config has read it).
fn revalidate_section() -> Result<(String, String, Option<PathBuf>), Error> {
    if let Ok(token) = std::env::var(isr_proxy::config::DEFAULT_TOKEN_ENV)
        && !token.is_empty()
    {
        return Ok(("[revalidate]\n".to_owned(), token, None));
    }
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_nanos();
    let token = format!("load-check-{}-{nanos}", std::process::id());
    let file = std::env::temp_dir().join(format!("isr-load-check-token-{}", std::process::id()));
    std::fs::write(&file, &token)?;
    let section = format!("[revalidate]\ntoken_file = {:?}\n", file.display().to_string());
    Ok((section, token, Some(file)))
}
