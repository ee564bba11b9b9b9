//! The scan's unit tests; its specification is the oracle tests
//! (`tests/vast_oracle.rs`, `tests/fuzz_corpus.rs`).

use super::extract::duration_ms;
use super::*;
use bytes::Bytes;

const INLINE: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2" xmlns="http://www.iab.com/VAST">
  <Ad id="1"><InLine><AdSystem>x</AdSystem><AdTitle>t &amp; t</AdTitle></InLine></Ad>
  <Ad id="2"><Wrapper><VASTAdTagURI><![CDATA[https://x/y?a=1&b=2]]></VASTAdTagURI></Wrapper></Ad>
</VAST>"#;

fn ads(inline: u32, wrapper: u32) -> VastVerdict {
    VastVerdict::Ads { inline, wrapper }
}

#[test]
fn verdicts() {
    assert_eq!(inspect(INLINE), ads(1, 1));
    assert_eq!(inspect(b"<VAST version=\"3.0\"></VAST>"), VastVerdict::NoAd);
    assert_eq!(
        inspect(b"<VAST version=\"3.0\"><Error>x</Error></VAST>"),
        VastVerdict::NoAd
    );
    assert_eq!(inspect(b"<VAST><Ad></VAST>"), VastVerdict::InvalidXml);
    assert_eq!(inspect(b"<VAST><Ad>"), VastVerdict::InvalidXml);
    assert_eq!(
        inspect(b"<VAST></VAST><VAST></VAST>"),
        VastVerdict::InvalidXml
    );
    assert_eq!(inspect(b"not xml"), VastVerdict::InvalidXml);
    assert_eq!(inspect(b"<VAST a=\"1\" a=\"2\"/>"), VastVerdict::InvalidXml);
    assert_eq!(inspect(b"   \n"), VastVerdict::InvalidXml);
    assert_eq!(inspect(b""), VastVerdict::Empty);
}

#[test]
fn what_a_strict_parser_rejects_is_invalid() {
    let title = |t: &str| {
        format!(r#"<VAST version="4.2"><Ad><InLine><AdTitle>{t}</AdTitle></InLine></Ad></VAST>"#)
    };
    assert_eq!(inspect(title("ok &lt;&#233;&#xE9;").as_bytes()), ads(1, 0));
    for bad in [
        "&nbsp;",
        "Tom & Jerry;",
        "&amp",
        "&#0;",
        "&#xD800;",
        "&#x110000;",
        "&#99999999999;",
        "&#X41;",
        "\u{1}",
        "\u{FFFE}",
        "]]>",
        "<b></c>",
        "<b a='1' a='2'/>",
        "<b a='<'/>",
        "<b a='&nope;'/>",
        "<b a='1'c='2'/>",
        "<p:b/>",
        "<b xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>",
        "<!-- a -- b -->",
        "<!DOCTYPE x>",
    ] {
        assert_eq!(
            inspect(title(bad).as_bytes()),
            VastVerdict::InvalidXml,
            "{bad:?}"
        );
    }
    let mut latin1 = title("caf").into_bytes();
    latin1.insert(latin1.len() - 38, 0xE9);
    assert_eq!(inspect(&latin1), VastVerdict::InvalidXml);
    for after in ["x", "<VAST/>", "&amp;", "<![CDATA[x]]>"] {
        let doc = format!("<VAST/>{after}");
        assert_eq!(inspect(doc.as_bytes()), VastVerdict::InvalidXml, "{doc}");
    }
    assert_eq!(inspect(b"<VAST/> <!-- c --> <?pi x?>\n"), VastVerdict::NoAd);
}

#[test]
fn roots_and_versions() {
    assert_eq!(inspect(b"<html/>"), VastVerdict::NotVast);
    assert_eq!(
        inspect(b"<VAST version=\"9.0\"/>"),
        VastVerdict::UnsupportedVersion
    );
    assert_eq!(
        inspect(b"<VAST version=\"1.0\"/>"),
        VastVerdict::UnsupportedVersion
    );
    assert_eq!(
        inspect(b"<VAST version=\"\"/>"),
        VastVerdict::UnsupportedVersion
    );
    for v in ["2.0", "3.0", "4", "4.1", " 4.2 ", "4&#46;3"] {
        let doc = format!("<VAST version=\"{v}\"><Ad><InLine/></Ad></VAST>");
        assert_eq!(inspect(doc.as_bytes()), ads(1, 0), "{v}");
    }
    assert_eq!(inspect(b"<VAST><Ad><Wrapper/></Ad></VAST>"), ads(0, 1));
    assert_eq!(
        inspect(b"<VideoAdServingTemplate><Ad><InLine/></Ad><Ad><Wrapper/></Ad></VideoAdServingTemplate>"),
        ads(1, 1)
    );
    assert_eq!(
        inspect(b"<v:VAST xmlns:v=\"http://www.iab.com/VAST\" version=\"4.2\"><v:Ad><v:InLine/></v:Ad></v:VAST>"),
        ads(1, 0)
    );
    // Broken XML is 100 whatever the root.
    assert_eq!(inspect(b"<VAST version=\"9.0\">"), VastVerdict::InvalidXml);
    assert_eq!(
        VastVerdict::NotVast.outcome(),
        VastVerdict::InvalidXml.outcome()
    );
    assert!(!VastVerdict::UnsupportedVersion.is_vast());
    assert_eq!(VastVerdict::Empty.iab_code(), None);
    assert_eq!(VastVerdict::NoAd.iab_code(), None);
}

#[test]
fn every_split_of_a_document_gives_the_same_verdict() {
    let whole = inspect(INLINE);
    for at in 0..=INLINE.len() {
        let chunks = [
            Bytes::from_static(&INLINE[..at]),
            Bytes::from_static(&INLINE[at..]),
        ];
        assert_eq!(inspect_chunks(&chunks), whole, "split at {at}");
    }
    let bytewise: Vec<Bytes> = INLINE.chunks(1).map(Bytes::copy_from_slice).collect();
    assert_eq!(inspect_chunks(&bytewise), whole);
    // A byte-order mark split across chunks, and a second one that is
    // text before the root in both paths; a character split.
    for doc in [
        &b"\xEF\xBB\xBF<VAST/>"[..],
        b"\xEF\xBB\xBF\xEF\xBB\xBF<VAST/>",
        "<VAST><Ad><InLine><AdTitle>caf\u{e9} \u{1F3AC}</AdTitle></InLine></Ad></VAST>".as_bytes(),
        b"<VAST>\xEF\xBF\xBE</VAST>",
        b"<VAST>\xE9</VAST>",
    ] {
        for at in 0..doc.len() {
            let chunks = [
                Bytes::copy_from_slice(&doc[..at]),
                Bytes::copy_from_slice(&doc[at..]),
            ];
            assert_eq!(
                inspect_chunks(&chunks),
                inspect(doc),
                "{doc:?} split at {at}"
            );
        }
    }
    assert_eq!(
        inspect(b"\xEF\xBB\xBF\xEF\xBB\xBF<VAST/>"),
        VastVerdict::InvalidXml
    );
    assert_eq!(inspect(b"\xEF\xBB\xBF<VAST/>"), VastVerdict::NoAd);
    assert_eq!(inspect_chunks::<Bytes>(&[]), VastVerdict::Empty);
    assert_eq!(
        inspect_chunks(&[Bytes::new(), Bytes::new()]),
        VastVerdict::Empty
    );
}

#[test]
fn dtds_are_refused_and_nothing_is_expanded() {
    let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE VAST [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY x SYSTEM "file:///etc/passwd">]>
<VAST version="4.0"><Ad><InLine><AdTitle>&b;&x;</AdTitle></InLine></Ad></VAST>"#;
    assert_eq!(inspect(laughs), VastVerdict::InvalidXml);
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vast/");

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{rel}")).unwrap()
}

#[test]
fn wrapper_targets_of_the_iab_samples() {
    let iab = "https://raw.githubusercontent.com/InteractiveAdvertisingBureau/VAST_Samples/master/";
    let t = wrapper_target(&fixture("vast3/Wrapper_Tag-test.xml")).unwrap();
    assert_eq!(
        t.uri,
        format!("{iab}VAST%203.0%20Samples/Inline_Companion_Tag-test.xml")
    );
    assert!(t.follow_additional_wrappers);
    assert_eq!(t.fallback_on_no_ad, None);
    let t = wrapper_target(&fixture("vast4.2/Wrapper_Tag-test.xml")).unwrap();
    assert_eq!(
        t.uri,
        format!("{iab}VAST%204.2%20Samples/Inline_Companion_Tag-test.xml")
    );
    assert!(!t.follow_additional_wrappers);
    assert_eq!(t.fallback_on_no_ad, Some(false));
    let t = wrapper_target(&fixture("vast2/tremor/vast_wrapper_linear_1.xml")).unwrap();
    assert_eq!(
        t.uri,
        "http://demo.tremormedia.com/proddev/vast/vast_inline_linear.xml"
    );
    assert_eq!(wrapper_target(&fixture("vast4.2/Inline_Simple.xml")), None);
}

#[test]
fn wrapper_targets() {
    let vast1 = br#"<VideoAdServingTemplate><Ad id="1"><Wrapper><AdSystem>x</AdSystem>
<VASTAdTagURL><URL><![CDATA[https://a/b?c=1&d=2]]></URL></VASTAdTagURL></Wrapper></Ad></VideoAdServingTemplate>"#;
    assert_eq!(
        wrapper_target(vast1),
        Some(WrapperTarget {
            uri: "https://a/b?c=1&d=2".into(),
            follow_additional_wrappers: true,
            fallback_on_no_ad: None,
        })
    );
    let escaped = br#"<VAST version="3.0"><Ad><InLine/></Ad><Ad><Wrapper followAdditionalWrappers=" false " fallbackOnNoAd="1"><VASTAdTagURI>
  https://a/b?c=1&amp;d=&#x32;
</VASTAdTagURI></Wrapper></Ad></VAST>"#;
    assert_eq!(
        wrapper_target(escaped),
        Some(WrapperTarget {
            uri: "https://a/b?c=1&d=2".into(),
            follow_additional_wrappers: false,
            fallback_on_no_ad: Some(true),
        })
    );
    // Not valid VAST, or no URI: nothing to follow.
    for doc in [
        &br#"<VAST version="9.0"><Ad><Wrapper><VASTAdTagURI>https://a</VASTAdTagURI></Wrapper></Ad></VAST>"#[..],
        br#"<VAST><Ad><Wrapper><VASTAdTagURI>https://a</VASTAdTagURI></Wrapper></Ad></VAST"#,
        br#"<VAST><Ad><Wrapper><VASTAdTagURI>&nbsp;https://a</VASTAdTagURI></Wrapper></Ad></VAST>"#,
        br#"<VAST><Ad><Wrapper><Impression>x</Impression></Wrapper></Ad></VAST>"#,
        br#"<VAST><Ad><Wrapper><VASTAdTagURI/></Wrapper></Ad></VAST>"#,
        br#"<VAST><Ad><Wrapper><VASTAdTagURI> </VASTAdTagURI></Wrapper></Ad></VAST>"#,
        br#"<VAST><Ad><InLine><VASTAdTagURI>https://a</VASTAdTagURI></InLine></Ad></VAST>"#,
    ] {
        assert_eq!(wrapper_target(doc), None, "{}", String::from_utf8_lossy(doc));
    }
}

#[test]
fn pods_and_durations_come_from_the_same_scan() {
    let pod = br#"<VAST version="4.2">
  <Ad id="1" sequence="1"><InLine><Creatives><Creative><Linear><Duration>00:00:15</Duration></Linear></Creative>
<Creative><CompanionAds/></Creative></Creatives></InLine></Ad>
  <Ad id="2" sequence="2"><InLine><Creatives><Creative><Linear>
<Duration><![CDATA[ 00:00:30.500 ]]></Duration><Duration>00:09:00</Duration></Linear></Creative></Creatives></InLine></Ad>
  <Ad id="3" sequence="3"><InLine><Creatives><Creative><Linear><Duration>0:30</Duration></Linear></Creative>
<Creative><Linear/></Creative><Creative><Linear><MediaFiles/></Linear></Creative></Creatives></InLine></Ad>
  <Ad id="4"><Wrapper><VASTAdTagURI>http://a/b</VASTAdTagURI><Creatives><Creative><Linear><Duration>00:01:00</Duration></Linear></Creative></Creatives></Wrapper></Ad>
</VAST>"#;
    let i = Inspection::of(pod);
    assert_eq!(i.verdict, ads(3, 1));
    assert_eq!(i.ads, 4);
    // 15 s + 30.5 s; a wrapper's creatives are not the ad's.
    assert_eq!(i.linear, Duration::from_millis(45_500));
    // `0:30`, a `<Linear/>`, a linear without a duration.
    assert_eq!(i.bad_durations, 3);
    assert_eq!(i.wrapper.as_ref().unwrap().uri, "http://a/b");
    let vast1 = br#"<VideoAdServingTemplate><Ad><InLine><Video><Duration>00:00:20</Duration></Video></InLine></Ad></VideoAdServingTemplate>"#;
    assert_eq!(Inspection::of(vast1).linear, Duration::from_secs(20));
    // A broken document yields nothing but its verdict.
    let broken = br#"<VAST><Ad><InLine><Creatives><Creative><Linear><Duration>00:00:15</Duration></Linear></Creative></Creatives></InLine></Ad>"#;
    assert_eq!(
        Inspection::of(broken),
        Inspection::verdict(VastVerdict::InvalidXml)
    );
    let split = [
        Bytes::from_static(&pod[..100]),
        Bytes::from_static(&pod[100..]),
    ];
    assert_eq!(Inspection::of_chunks(&split), i);
}

#[test]
fn durations() {
    for (text, ms) in [
        ("00:00:30", Some(30_000)),
        (" 01:02:03.004 ", Some(3_723_004)),
        ("0:00:05.5", Some(5_500)),
        ("00:00:05.25", Some(5_250)),
        ("0:30", None),
        ("00:60:00", None),
        ("00:00:5", None),
        ("00:00:05.", None),
        ("00:00:05.1234", None),
        ("-1:00:00", None),
        ("", None),
        ("00:00:30:00", None),
    ] {
        assert_eq!(duration_ms(text.as_bytes()), ms, "{text:?}");
    }
}
