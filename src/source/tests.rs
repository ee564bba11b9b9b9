//! Unit tests of source labels.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use super::hash::label_of_hash;
use super::*;

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

#[test]
fn normalisation() {
    let cases = [
        (
            "https://ads.example.com/vast?cb=1",
            "https://ads.example.com/vast",
        ),
        (
            "HTTP://Ads.Example.COM:80/Path/X#frag",
            "http://ads.example.com/Path/X",
        ),
        (
            "https://u:p@ads.example.com:8443/v",
            "https://ads.example.com:8443/v",
        ),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("http://[::1]:9000/a", "http://[::1]:9000/a"),
    ];
    for (raw, normalised) in cases {
        assert_eq!(normalise(&uri(raw)).as_deref(), Some(normalised), "{raw}");
        let h = SourceHasher::default();
        assert_eq!(
            h.hash_uri(&uri(raw)),
            Some(h.hash_normalised(normalised)),
            "{raw}"
        );
    }
    assert_eq!(normalise(&uri("/relative?q=1")), None);
}

#[test]
fn hash_test_vectors() {
    // Fixed forever: dashboards and fleets depend on these.
    let h = SourceHasher::default();
    let vectors = [
        ("https://ads.example.com/vast", "438ca5eac38d"),
        ("http://127.0.0.1:8080/", "a0271f5ff6d3"),
    ];
    for (normalised, label) in vectors {
        assert_eq!(
            label_of_hash(h.hash_normalised(normalised)),
            label,
            "{normalised}"
        );
    }
}

#[test]
fn keyed_hashes_differ() {
    let u = uri("https://ads.example.com/vast");
    let plain = SourceHasher::default().label_for(&u);
    let a = SourceHasher::keyed([1; 16]).label_for(&u);
    let b = SourceHasher::keyed([2; 16]).label_for(&u);
    assert_ne!(plain, a);
    assert_ne!(a, b);
    assert_eq!(a, SourceHasher::keyed([1; 16]).label_for(&u));
}

#[test]
fn resolver_caps_presets_and_precedence() {
    let mut config = SourceConfig::new(2);
    config
        .alias("http://alias.example/vast?x=1", "aliased".into())
        .unwrap();
    assert!(matches!(
        config.alias("http://[bad", "x".into()),
        Err(AliasError::InvalidUrl(_))
    ));
    assert!(matches!(
        config.alias("/relative", "x".into()),
        Err(AliasError::NoHost)
    ));
    let r = SourceResolver::<String>::new(config);
    let overflows = std::cell::Cell::new(0);
    let resolve = |url: &str, label: Option<SourceLabel>| {
        r.resolve(
            label.as_ref(),
            &uri(url),
            quanta::Instant::now(),
            |l: &Arc<str>| l.to_string(),
            || overflows.set(overflows.get() + 1),
        )
    };
    assert_eq!(*resolve("http://alias.example/vast?cb=2", None), "aliased");
    assert_eq!(
        *resolve("http://a.example/", None),
        label_of_hash(SourceHasher::default().hash_normalised("http://a.example/"))
    );
    assert_eq!(
        *resolve("http://a.example/?q", Some(SourceLabel::new("named"))),
        "named"
    );
    // The cap (2) is reached; the alias did not count.
    assert_eq!(*resolve("http://b.example/", None), "other");
    assert_eq!(
        *resolve("http://b.example/", Some(SourceLabel::new("x"))),
        "other"
    );
    assert_eq!(overflows.get(), 2);
    assert_eq!(*resolve("http://alias.example/vast", None), "aliased");
    assert_eq!(*resolve("/no-host", None), "other");
}

#[test]
fn idle_sources_expire_unless_held() {
    let mut config = SourceConfig::new(2);
    config.idle_expiry = Some(Duration::from_millis(10));
    config
        .alias("http://alias.example/", "aliased".into())
        .unwrap();
    let released = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let r = SourceResolver::<String>::new(config).expiring({
        let released = released.clone();
        move |label: &String| released.lock().unwrap().push(label.clone())
    });
    let resolve = |url: &str| {
        r.resolve(
            None,
            &uri(url),
            quanta::Instant::now(),
            |l: &Arc<str>| l.to_string(),
            || (),
        )
    };
    let held = resolve("http://a.example/");
    resolve("http://alias.example/");
    let named = r.by_name("named", |l: &Arc<str>| l.to_string(), || ());
    drop(named);
    assert_eq!(*resolve("http://b.example/"), "other");
    std::thread::sleep(Duration::from_millis(50));
    // "named" expires (idle, not held) and frees a slot; "a" is held.
    let c = resolve("http://c.example/");
    assert_eq!(
        *c,
        label_of_hash(SourceHasher::default().hash_normalised("http://c.example/"))
    );
    assert_eq!(*released.lock().unwrap(), ["named"]);
    assert_eq!(*resolve("http://d.example/"), "other");
    drop((held, c));
    std::thread::sleep(Duration::from_millis(50));
    assert_ne!(*resolve("http://d.example/"), "other");
    let mut released = released.lock().unwrap().clone();
    released.sort();
    assert_eq!(released.len(), 3);
    assert!(released.contains(&"named".to_owned()));
    assert_eq!(*resolve("http://alias.example/"), "aliased");
}
