//! HTTP redirects, followed where the crate fetches as a player's HTTP
//! stack follows them.

use std::any::Any;
use std::future::poll_fn;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, PROXY_AUTHORIZATION,
    TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use http::{Extensions, HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use tower_service::Service;

use crate::classify::{classify_error, Outcome};
use crate::layer::{location, Redirecting};
use crate::recorder::Counter;

/// How one fetch follows redirects.
#[derive(Clone, Copy)]
pub(crate) struct Redirects<'a> {
    /// Most redirects followed; 0 follows none.
    pub(crate) max: usize,
    /// `vast_redirects_total` of the originating source.
    pub(crate) counter: Option<&'a Counter>,
}

/// Sends `req` through `svc` and follows the redirects of its answers: at
/// most `redirects.max`, always as a GET with an empty body, with the
/// first request's headers and extensions, never twice to one URL. The
/// last answer: a 3xx when one was not followed. The inner service's
/// error, unchanged.
pub(crate) async fn send<S, B>(
    svc: &mut S,
    mut req: Request<Full<Bytes>>,
    redirects: Redirects<'_>,
) -> Result<Response<B>, S::Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: 'static,
{
    if redirects.max == 0 {
        return call(svc, req).await;
    }
    let marker = Redirecting::default();
    req.extensions_mut().insert(marker.clone());
    let mut next = FollowUps::of(&req);
    let mut response = call(svc, req).await?;
    let mut followed = 0;
    while let Some(location) = location(response.status(), response.headers()) {
        let follow_up = (followed < redirects.max)
            .then(|| next.to(location))
            .flatten();
        let Some(req) = follow_up else {
            // Not followed: the client layer's request ends here.
            marker.end(Outcome::Failure(crate::classify::ErrorType::Redirect));
            break;
        };
        followed += 1;
        if let Some(counter) = redirects.counter {
            counter.increment(1);
        }
        drop(response);
        response = match call(svc, req).await {
            Ok(response) => response,
            Err(error) => {
                // Not ready for the follow-up: the request held ends with
                // the error (once sent, the layer ended it).
                marker.end(Outcome::Failure(classify_error(&error as &dyn Any)));
                return Err(error);
            }
        };
    }
    Ok(response)
}

/// Ready, then call.
async fn call<S, B>(svc: &mut S, req: Request<Full<Bytes>>) -> Result<Response<B>, S::Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
{
    poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

/// The follow-up requests of one fetch.
struct FollowUps {
    /// The URLs requested so far; the last is the current one.
    seen: Vec<Uri>,
    headers: HeaderMap,
    extensions: Extensions,
}

impl FollowUps {
    /// Follow-ups of `first`: its headers (but those of its body and its
    /// `Host`) and its extensions.
    fn of(first: &Request<Full<Bytes>>) -> Self {
        let mut headers = first.headers().clone();
        for name in [HOST, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING] {
            headers.remove(name);
        }
        FollowUps {
            seen: vec![first.uri().clone()],
            headers,
            extensions: first.extensions().clone(),
        }
    }

    /// The GET that `location` sends the current request to; `None` when
    /// it cannot be followed (not an http(s) URL) or was already requested
    /// (a loop, stopped before the repeat).
    fn to(&mut self, location: &HeaderValue) -> Option<Request<Full<Bytes>>> {
        let current = self.seen.last()?;
        let uri = resolve(current, location)?;
        if self.seen.contains(&uri) {
            return None;
        }
        let mut req = Request::get(uri.clone()).body(Full::default()).ok()?;
        *req.headers_mut() = self.headers.clone();
        if !same_origin(&self.seen[0], &uri) {
            // Credentials stay with their origin, as browsers and reqwest do.
            for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
                req.headers_mut().remove(name);
            }
        }
        *req.extensions_mut() = self.extensions.clone();
        self.seen.push(uri);
        Some(req)
    }
}

/// `location` resolved against `base` (RFC 3986, relative references
/// included), without its fragment; `None` unless an http(s) URL.
fn resolve(base: &Uri, location: &HeaderValue) -> Option<Uri> {
    let base = url::Url::parse(&base.to_string()).ok()?;
    let mut target = base.join(location.to_str().ok()?).ok()?;
    if !matches!(target.scheme(), "http" | "https") || !target.has_host() {
        return None;
    }
    target.set_fragment(None);
    target.as_str().parse().ok()
}

fn same_origin(a: &Uri, b: &Uri) -> bool {
    a.scheme() == b.scheme() && a.authority() == b.authority()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(base: &str, location: &'static str) -> Option<String> {
        resolve(&base.parse().unwrap(), &HeaderValue::from_static(location))
            .map(|uri| uri.to_string())
    }

    #[test]
    fn locations_resolve_against_the_request_url() {
        let base = "http://ads.example/a/b/tag?cb=1";
        assert_eq!(
            resolved(base, "http://cdn.example/vast.xml").as_deref(),
            Some("http://cdn.example/vast.xml")
        );
        assert_eq!(
            resolved(base, "/inline?x=2").as_deref(),
            Some("http://ads.example/inline?x=2")
        );
        assert_eq!(
            resolved(base, "next").as_deref(),
            Some("http://ads.example/a/b/next")
        );
        assert_eq!(
            resolved(base, "../up#frag").as_deref(),
            Some("http://ads.example/a/up")
        );
        assert_eq!(
            resolved(base, "//other.example:8080/v").as_deref(),
            Some("http://other.example:8080/v")
        );
        assert_eq!(
            resolved(base, "?cb=2").as_deref(),
            Some("http://ads.example/a/b/tag?cb=2")
        );
        assert_eq!(resolved(base, "ftp://files.example/x"), None);
        assert_eq!(resolved(base, "javascript:alert(1)"), None);
        // A request without scheme and host gives nothing to resolve against.
        assert_eq!(resolved("/tag", "/inline"), None);
    }

    #[test]
    fn follow_ups_stop_before_a_repeat_and_keep_credentials_home() {
        let mut first = Request::post("http://a.example/tag")
            .header(AUTHORIZATION, "Bearer x")
            .header(CONTENT_TYPE, "text/plain")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(Full::new(Bytes::from_static(b"body")))
            .unwrap();
        first.extensions_mut().insert(7u32);
        let mut next = FollowUps::of(&first);
        let same = next.to(&HeaderValue::from_static("/b")).unwrap();
        assert_eq!(same.method(), http::Method::GET);
        assert_eq!(same.uri(), "http://a.example/b");
        assert!(same.headers().contains_key(AUTHORIZATION));
        assert!(!same.headers().contains_key(CONTENT_TYPE));
        assert_eq!(same.extensions().get::<u32>(), Some(&7));
        let other = next
            .to(&HeaderValue::from_static("http://c.example/c"))
            .unwrap();
        assert!(!other.headers().contains_key(AUTHORIZATION));
        assert!(other.headers().contains_key("traceparent"));
        assert!(next
            .to(&HeaderValue::from_static("http://a.example/b"))
            .is_none());
        assert!(next
            .to(&HeaderValue::from_static("http://a.example/tag"))
            .is_none());
    }
}
