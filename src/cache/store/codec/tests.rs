use super::*;

fn sample() -> (CacheKey, Entry) {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/html"));
    headers.append("link", HeaderValue::from_static("</a.css>; rel=preload"));
    headers.append(
        "link",
        HeaderValue::from_bytes(b"</\xe9.js>").expect("obs-text is a valid value"),
    );
    headers.insert("x-isr-tags", HeaderValue::from_static("blog, post-1"));
    let entry = Entry::from_origin(
        StatusCode::NOT_FOUND,
        headers,
        Bytes::from_static(b"<p>gone</p>"),
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        Lifetime {
            revalidate: Some(Duration::from_secs(60)),
            expire: Duration::from_secs(600),
        },
        &HeaderName::from_static("x-isr-tags"),
    );
    entry.mark_stale();
    let key = CacheKey::new(
        "/blog/a",
        Some("page=2"),
        vec![(HeaderName::from_static("rsc"), HeaderValue::from_static("1"))],
    );
    (key, entry)
}

#[test]
fn entries_round_trip_exactly() {
    let (key, entry) = sample();
    let (back_key, back) = decode(&encode(&key, &entry)).expect("decodes");
    assert_eq!(back_key, key);
    assert_eq!(back.status, entry.status);
    assert_eq!(back.headers, entry.headers);
    assert_eq!(back.body, entry.body);
    assert_eq!(back.etag, entry.etag);
    assert_eq!(back.generated_at, entry.generated_at);
    assert_eq!(back.lifetime, entry.lifetime);
    assert_eq!(back.tags, entry.tags);
    assert!(back.is_marked_stale());
}

#[test]
fn a_host_specific_key_round_trips_and_names_its_own_file() {
    let (plain, entry) = sample();
    let key = CacheKey::on_host(
        Some("shop.example.com"),
        "/blog/a",
        Some("page=2"),
        plain.variant().to_vec(),
    );
    let (back_key, _) = decode(&encode(&key, &entry)).expect("decodes");
    assert_eq!(back_key, key);
    assert_eq!(back_key.host(), Some("shop.example.com"));
    assert_ne!(
        key_hash(&key),
        key_hash(&plain),
        "each site's page has its own name in a tier"
    );
}

#[test]
fn precompressed_forms_round_trip() {
    let (key, _) = sample();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/html"));
    let body = Bytes::from("<p>hello hello hello hello hello hello hello hello</p>".repeat(40));
    let entry = Entry::from_origin(
        StatusCode::OK,
        headers,
        body.clone(),
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
        Lifetime {
            revalidate: None,
            expire: Duration::from_secs(600),
        },
        &HeaderName::from_static("x-isr-tags"),
    )
    .with_encodings(crate::compression::compress(&body));
    let gzip = entry.encoded.gzip.clone().expect("repetitive html compresses");
    let br = entry.encoded.br.clone().expect("repetitive html compresses");

    let (_, back) = decode(&encode(&key, &entry)).expect("decodes");
    let back_gzip = back.encoded.gzip.expect("gzip kept");
    let back_br = back.encoded.br.expect("br kept");
    assert_eq!((back_gzip.body, back_gzip.etag), (gzip.body, gzip.etag));
    assert_eq!((back_br.body, back_br.etag), (br.body, br.etag));
    assert_eq!(back.headers, entry.headers, "Vary: Accept-Encoding is not added twice");
}

/// An origin-mode entry's stale rule survives a tier, and an instance that predates
/// [`ServeStale::WithinWindows`] (reading `must_revalidate` only) never serves such a page stale.
#[test]
fn stale_rules_round_trip_and_older_readers_stay_strict() {
    let (key, _) = sample();
    for serve_stale in [ServeStale::Allowed, ServeStale::WithinWindows, ServeStale::Never] {
        let meta = HttpMeta {
            freshness: HttpFreshness {
                lifetime: Duration::from_secs(2),
                stale_while_revalidate: Duration::from_secs(30),
                serve_stale,
                ..HttpFreshness::default()
            },
            initial_age: Duration::ZERO,
            selecting: Box::default(),
        };
        let entry = Entry::from_origin_http(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(b"<p>a</p>"),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
            meta.clone(),
            Duration::from_secs(600),
            &HeaderName::from_static("x-isr-tags"),
        );
        let bytes = encode(&key, &entry);
        let (_, back) = decode(&bytes).expect("decodes");
        assert_eq!(back.http.as_ref().map(|h| h.freshness), Some(meta.freshness));
        let text = String::from_utf8_lossy(&bytes);
        let strict = serve_stale != ServeStale::Allowed;
        assert!(
            text.contains(&format!("\"must_revalidate\":{strict}")),
            "{serve_stale:?}: an older reader must see must_revalidate = {strict}"
        );
    }
}

#[test]
fn torn_corrupt_or_foreign_bytes_are_errors_not_entries() {
    let (key, entry) = sample();
    let bytes = encode(&key, &entry);
    for cut in [0, 3, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(decode(&bytes[..cut]).is_err(), "torn at {cut}");
    }
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    assert_eq!(decode(&flipped).err(), Some(CodecError::Checksum));
    let mut future = bytes.clone();
    future[4] = 9;
    assert_eq!(decode(&future).err(), Some(CodecError::Version(9)));
    assert_eq!(decode(b"GIF89a....................").err(), Some(CodecError::BadMagic));
}
