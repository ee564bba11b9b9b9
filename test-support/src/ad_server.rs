//! An embedded VAST ad server on loopback, for examples, tests and
//! benchmarks: real hyper, real sockets, fixed answers.
//!
//! Routes (the query string is ignored, as cache-busters are):
//!
//! | path | answer |
//! |---|---|
//! | `/inline` | 200, a VAST 4.2 inline ad |
//! | `/wrapper` | 200, a VAST 4.2 wrapper ad |
//! | `/no-ad` | 200, VAST without an ad (no fill) |
//! | `/invalid-xml` | 200, truncated XML |
//! | `/not-vast` | 200, well-formed XML whose root is not `<VAST>` |
//! | `/empty` | 200, empty body |
//! | `/status/{code}` | that status, short text body |
//! | `/slow/{ms}` | the inline ad after `ms` milliseconds |
//! | `/chunked/{n}` | the inline ad in `n` chunks, 2 ms apart |
//! | `/reset` | half the inline ad, then the connection is cut |
//! | `/big/{kb}` | an inline ad padded to about `kb` KiB |
//! | `/pixel` | 204, for tracking requests |
//! | `/vast1` | 200, a VAST 1.0 inline ad |
//! | `/gzip`, `/gzip-no-ad` | 200, the inline ad (or no ad), `Content-Encoding: gzip` |
//! | `/gzip-corrupt` | 200, a gzip body with its second half flipped |
//! | `/gzip-bomb` | 200, about 1 MB of gzip that decodes to 1 GiB of spaces |
//! | `/deflate`, `/raw-deflate` | 200, the inline ad, `deflate` (zlib, or raw) |
//! | `/br` | 200, the inline ad's plain bytes labelled `Content-Encoding: br` |
//! | `/wrap/{n}` | a wrapper to `/wrap/{n-1}`; `/wrap/0` is the inline ad |
//! | `/wrap-empty/{n}` | a wrapper to `/wrap-empty/{n-1}`; `/wrap-empty/0` is VAST without an ad |
//! | `/wrap-slow/{ms}` | a wrapper to `/slow/{ms}` |
//! | `/wrap-broken`, `/wrap-500` | a wrapper to `/invalid-xml`, to `/status/500` |
//! | `/loop` | a wrapper to itself |
//! | `/wrap-nofollow` | a wrapper (`followAdditionalWrappers="false"`) to `/wrap/2` |
//! | `/redirect/{code}` | that status (301, 302, 303, 307, 308, ...), `Location: /inline?via=redirect` |
//! | `/redirect-abs` | 302, `Location:` the absolute URL of `/inline` |
//! | `/hop/{n}` | 302 to `{n-1}` (relative to `/hop/{n}`); `/hop/0` is the inline ad |
//! | `/bounce/{0,1}` | 302 to `/bounce/{1,0}`: a redirect loop |
//! | `/redirect-nowhere` | 302 without a `Location` |
//! | `/redirect-slow/{ms}` | 302 to `/slow/{ms}` |
//! | `/wrap-redirect` | a wrapper to `/redirect/302` |
//!
//! [`AdServer::hits`] counts the requests per path.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = vast_test_support::ad_server::AdServer::start().await?;
//! assert!(server.url("/inline").starts_with("http://127.0.0.1:"));
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A VAST 4.2 inline ad.
pub const INLINE_VAST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2" xmlns="http://www.iab.com/VAST">
  <Ad id="20001" sequence="1">
    <InLine>
      <AdSystem version="1">vast-metrics</AdSystem>
      <AdTitle>Inline &amp; simple</AdTitle>
      <Impression id="imp"><![CDATA[http://127.0.0.1/pixel?e=impression]]></Impression>
      <Creatives>
        <Creative id="5480" sequence="1">
          <Linear>
            <Duration>00:00:16</Duration>
            <TrackingEvents>
              <Tracking event="start"><![CDATA[http://127.0.0.1/pixel?e=start]]></Tracking>
              <Tracking event="firstQuartile"><![CDATA[http://127.0.0.1/pixel?e=firstQuartile]]></Tracking>
            </TrackingEvents>
            <MediaFiles>
              <MediaFile delivery="progressive" type="video/mp4" width="1280" height="720"><![CDATA[https://cdn.example.com/ad.mp4]]></MediaFile>
            </MediaFiles>
          </Linear>
        </Creative>
      </Creatives>
    </InLine>
  </Ad>
</VAST>
"#;

/// A VAST 4.2 wrapper ad.
pub const WRAPPER_VAST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2" xmlns="http://www.iab.com/VAST">
  <Ad id="20002">
    <Wrapper followAdditionalWrappers="true">
      <AdSystem>vast-metrics</AdSystem>
      <Impression><![CDATA[http://127.0.0.1/pixel?e=wrapper-impression]]></Impression>
      <VASTAdTagURI><![CDATA[http://127.0.0.1/inline?cb=1]]></VASTAdTagURI>
    </Wrapper>
  </Ad>
</VAST>
"#;

/// VAST without an ad: no fill.
pub const NO_AD_VAST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2" xmlns="http://www.iab.com/VAST"><Error><![CDATA[http://127.0.0.1/pixel?e=error&code=303]]></Error></VAST>
"#;

/// Truncated XML.
pub const INVALID_XML: &str =
    r#"<?xml version="1.0"?><VAST version="4.2"><Ad id="1"><InLine><AdTitle>cut"#;

/// Well-formed XML that is not VAST.
pub const NOT_VAST: &str = "<html><body>Not an ad</body></html>";

type BoxBody = http_body_util::combinators::BoxBody<Bytes, io::Error>;

/// A running ad server; stops when dropped.
#[derive(Debug)]
pub struct AdServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    hits: Hits,
}

/// Requests served, by path.
type Hits = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

impl AdServer {
    /// Starts a server on an ephemeral loopback port.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let hits = Hits::default();
        let counted = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let hits = counted.clone();
                tokio::spawn(async move {
                    let answer = service_fn(move |req: Request<Incoming>| {
                        *hits
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(req.uri().path().to_owned())
                            .or_default() += 1;
                        answer(req, addr)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), answer)
                        .await;
                });
            }
        });
        Ok(AdServer { addr, task, hits })
    }

    /// How many requests for `path` (without the query) were answered.
    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The absolute URL of a path (with or without a query) on this server.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }
}

impl Drop for AdServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(req: Request<Incoming>, addr: SocketAddr) -> Result<Response<BoxBody>, Infallible> {
    let here = |path: &str| format!("http://{addr}{path}");
    let path = req.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let route = parts.next().unwrap_or_default();
    let arg: Option<u64> = parts.next().and_then(|a| a.parse().ok());
    Ok(match (route, arg) {
        ("inline", _) => xml(INLINE_VAST),
        ("wrapper", _) => xml(WRAPPER_VAST),
        ("no-ad", _) => xml(NO_AD_VAST),
        ("invalid-xml", _) => xml(INVALID_XML),
        ("not-vast", _) => xml(NOT_VAST),
        ("empty", _) => xml(""),
        ("pixel", _) => with_status(StatusCode::NO_CONTENT, ""),
        ("status", Some(code)) => {
            let status = u16::try_from(code)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok());
            with_status(status.unwrap_or(StatusCode::BAD_REQUEST), "status")
        }
        ("slow", Some(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            xml(INLINE_VAST)
        }
        ("chunked", Some(n)) => chunked(INLINE_VAST.as_bytes(), n.clamp(1, 10_000) as usize, None),
        ("reset", _) => {
            let half = &INLINE_VAST.as_bytes()[..INLINE_VAST.len() / 2];
            chunked(
                half,
                2,
                Some(io::Error::new(io::ErrorKind::ConnectionReset, "cut")),
            )
        }
        ("big", Some(kb)) => xml_owned(big_vast(kb.min(100 * 1024) as usize * 1024)),
        ("vast1", _) => xml(VAST1_INLINE),
        ("wrap", Some(0)) => xml(INLINE_VAST),
        ("wrap", Some(n)) => xml_owned(wrapper_to(&here(&format!("/wrap/{}", n - 1)), None)),
        ("wrap-empty", Some(0)) => xml(NO_AD_VAST),
        ("wrap-empty", Some(n)) => {
            xml_owned(wrapper_to(&here(&format!("/wrap-empty/{}", n - 1)), None))
        }
        ("wrap-slow", Some(ms)) => xml_owned(wrapper_to(&here(&format!("/slow/{ms}")), None)),
        ("wrap-broken", _) => xml_owned(wrapper_to(&here("/invalid-xml"), None)),
        ("wrap-500", _) => xml_owned(wrapper_to(&here("/status/500"), None)),
        ("loop", _) => xml_owned(wrapper_to(&here("/loop"), None)),
        ("wrap-nofollow", _) => xml_owned(wrapper_to(&here("/wrap/2"), Some(false))),
        ("redirect", Some(code)) => {
            let status = u16::try_from(code)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok());
            redirect(
                status.unwrap_or(StatusCode::FOUND),
                Some("/inline?via=redirect".to_owned()),
            )
        }
        ("redirect-abs", _) => redirect(StatusCode::FOUND, Some(here("/inline"))),
        ("hop", Some(0)) => xml(INLINE_VAST),
        ("hop", Some(n)) => redirect(StatusCode::FOUND, Some((n - 1).to_string())),
        ("bounce", Some(n)) => {
            redirect(StatusCode::FOUND, Some(format!("/bounce/{}", 1 - n.min(1))))
        }
        ("redirect-nowhere", _) => redirect(StatusCode::FOUND, None),
        ("redirect-slow", Some(ms)) => redirect(StatusCode::FOUND, Some(format!("/slow/{ms}"))),
        ("wrap-redirect", _) => xml_owned(wrapper_to(&here("/redirect/302"), None)),
        ("gzip", _) => encoded(gzip(INLINE_VAST.as_bytes()), "gzip"),
        ("gzip-no-ad", _) => encoded(gzip(NO_AD_VAST.as_bytes()), "gzip"),
        ("gzip-corrupt", _) => {
            let mut bytes = gzip(INLINE_VAST.as_bytes());
            let middle = bytes.len() / 2;
            bytes[middle..].iter_mut().for_each(|b| *b = !*b);
            encoded(bytes, "gzip")
        }
        ("gzip-bomb", _) => encoded(gzip_bomb().to_vec(), "gzip"),
        ("deflate", _) => encoded(zlib(INLINE_VAST.as_bytes()), "deflate"),
        ("raw-deflate", _) => encoded(raw_deflate(INLINE_VAST.as_bytes()), "deflate"),
        ("br", _) => encoded(INLINE_VAST.as_bytes().to_vec(), "br"),
        ("pod", Some(n)) => xml_owned(pod(n.clamp(1, 50) as usize, "00:00:15")),
        ("pod-bad", Some(n)) => xml_owned(pod(n.clamp(1, 50) as usize, "0:15")),
        ("wrap-pod", Some(n)) => xml_owned(wrapper_to(&here(&format!("/pod/{n}")), None)),
        _ => with_status(StatusCode::NOT_FOUND, "no such route"),
    })
}

/// A VAST 4.2 ad pod: `ads` InLine ads in sequence, each with one linear
/// creative of `duration` (`HH:MM:SS`, or anything else for a bad one).
pub fn pod(ads: usize, duration: &str) -> String {
    let mut vast = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VAST version=\"4.2\" xmlns=\"http://www.iab.com/VAST\">\n",
    );
    for n in 1..=ads {
        vast.push_str(&format!(
            r#"  <Ad id="pod-{n}" sequence="{n}">
    <InLine>
      <AdSystem>vast-metrics</AdSystem>
      <AdTitle>Pod ad {n}</AdTitle>
      <Impression><![CDATA[http://127.0.0.1/pixel?e=impression]]></Impression>
      <Creatives>
        <Creative sequence="1">
          <Linear>
            <Duration>{duration}</Duration>
            <MediaFiles>
              <MediaFile delivery="progressive" type="video/mp4" width="640" height="360"><![CDATA[http://127.0.0.1/ad-{n}.mp4]]></MediaFile>
            </MediaFiles>
          </Linear>
        </Creative>
      </Creatives>
    </InLine>
  </Ad>
"#
        ));
    }
    vast.push_str("</VAST>\n");
    vast
}

/// A VAST 4.2 wrapper ad whose `VASTAdTagURI` is `uri`, with
/// `followAdditionalWrappers` when given.
pub fn wrapper_to(uri: &str, follow_additional: Option<bool>) -> String {
    let follow = follow_additional.map_or(String::new(), |f| {
        format!(r#" followAdditionalWrappers="{f}""#)
    });
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.2"><Ad id="w"><Wrapper{follow}><AdSystem>hop</AdSystem>
<VASTAdTagURI><![CDATA[ {uri} ]]></VASTAdTagURI><Impression><![CDATA[http://t.example/imp]]></Impression>
</Wrapper></Ad></VAST>"#
    )
}

/// A VAST 1.0 inline ad (root `<VideoAdServingTemplate>`).
pub const VAST1_INLINE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<VideoAdServingTemplate xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Ad id="v1"><InLine><AdSystem>Sample</AdSystem><AdTitle>VAST 1 ad</AdTitle>
    <Video><Duration>00:00:15</Duration><MediaFiles><MediaFile delivery="progressive" bitrate="400" width="640" height="360" type="video/mp4"><URL><![CDATA[https://cdn.example.com/ad.mp4]]></URL></MediaFile></MediaFiles></Video>
  </InLine></Ad>
</VideoAdServingTemplate>"#;

/// `bytes`, gzip-encoded.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    out.write_all(bytes).expect("writes to a Vec");
    out.finish().expect("writes to a Vec")
}

/// `bytes`, zlib-encoded (HTTP's `deflate`).
pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    out.write_all(bytes).expect("writes to a Vec");
    out.finish().expect("writes to a Vec")
}

/// `bytes`, raw deflate (what some servers send as `deflate`).
pub fn raw_deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    out.write_all(bytes).expect("writes to a Vec");
    out.finish().expect("writes to a Vec")
}

/// Bytes of the gzip bomb once decoded: 1 GiB.
pub const GZIP_BOMB_DECODED: u64 = 1 << 30;

/// A gzip body of about 1 MB that decodes to [`GZIP_BOMB_DECODED`] bytes:
/// 128 gzip members of 8 MiB of spaces each (decoders read every member).
pub fn gzip_bomb() -> &'static [u8] {
    static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BOMB.get_or_init(|| {
        let member = gzip(&vec![b' '; 8 << 20]);
        member.repeat((GZIP_BOMB_DECODED / (8 << 20)) as usize)
    })
}

fn encoded(body: Vec<u8>, coding: &'static str) -> Response<BoxBody> {
    let mut res = Response::new(full(Bytes::from(body)));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    res.headers_mut().insert(
        http::header::CONTENT_ENCODING,
        http::HeaderValue::from_static(coding),
    );
    res
}

/// An inline ad padded with a comment to about `bytes` bytes.
pub fn big_vast(bytes: usize) -> String {
    let pad = bytes.saturating_sub(INLINE_VAST.len());
    INLINE_VAST.replacen("<Ad id", &format!("<!-- {} --><Ad id", "x".repeat(pad)), 1)
}

fn full(body: Bytes) -> BoxBody {
    Full::new(body)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn xml(body: &'static str) -> Response<BoxBody> {
    let mut res = Response::new(full(Bytes::from_static(body.as_bytes())));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    res
}

fn xml_owned(body: String) -> Response<BoxBody> {
    let mut res = Response::new(full(Bytes::from(body)));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    res
}

fn with_status(status: StatusCode, body: &'static str) -> Response<BoxBody> {
    let mut res = Response::new(full(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res
}

/// A redirect with `location`, if any, and a short text body.
fn redirect(status: StatusCode, location: Option<String>) -> Response<BoxBody> {
    let mut res = with_status(status, "moved");
    if let Some(location) = location.and_then(|l| http::HeaderValue::try_from(l).ok()) {
        res.headers_mut().insert(http::header::LOCATION, location);
    }
    res
}

/// `body` in `n` chunks 2 ms apart, then `error` if any (the connection is cut).
fn chunked(body: &'static [u8], n: usize, error: Option<io::Error>) -> Response<BoxBody> {
    let size = body.len().div_ceil(n).max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, io::Error>>(4);
    tokio::spawn(async move {
        for piece in body.chunks(size) {
            if tx
                .send(Ok(Frame::data(Bytes::from_static(piece))))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if let Some(error) = error {
            let _ = tx.send(Err(error)).await;
        }
    });
    let mut res = Response::new(ChannelBody(rx).boxed());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    res
}

/// A body fed frame by frame from a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx)
    }
}
