use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use tower_layer::Layer;

use super::service::{TrackingMetricsService, TrackingState};
use super::{TrackingEvent, MAX_EVENT_TYPES};
use crate::classify::Classifier;
use crate::recorder::Recorder;

/// The configuration of one [`TrackingMetricsLayer`].
#[derive(Clone, Debug)]
pub(crate) struct TrackingConfig {
    pub(crate) default_event: Cow<'static, str>,
    pub(crate) max_event_types: usize,
    pub(crate) classify: Option<Classifier>,
}

/// Layer that records tracking pixels (see the [module docs](crate::tracking)).
///
/// Builder methods only set configuration; handles are made on each event
/// type's first request, shared by the services of one layer and its
/// clones.
#[derive(Clone)]
pub struct TrackingMetricsLayer {
    recorder: Arc<dyn Recorder>,
    config: TrackingConfig,
    state: Arc<OnceLock<Arc<TrackingState>>>,
}

impl fmt::Debug for TrackingMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackingMetricsLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TrackingMetricsLayer {
    /// A layer that records into `recorder`.
    pub fn new(recorder: impl Recorder) -> Self {
        TrackingMetricsLayer {
            recorder: Arc::new(recorder),
            config: TrackingConfig {
                default_event: Cow::Borrowed("unknown"),
                max_event_types: MAX_EVENT_TYPES,
                classify: None,
            },
            state: Arc::default(),
        }
    }

    fn configure(mut self, change: impl FnOnce(&mut TrackingConfig)) -> Self {
        change(&mut self.config);
        self.state = Arc::default();
        self
    }

    /// Event type of requests without a [`TrackingEvent`] in their
    /// extensions (reqwest requests carry none). Defaults to `unknown`.
    pub fn default_event(self, event: TrackingEvent) -> Self {
        self.configure(|c| c.default_event = Cow::Owned(event.as_str().to_owned()))
    }

    /// Caps distinct event types; past it, `other`. Defaults to
    /// [`MAX_EVENT_TYPES`].
    pub fn max_event_types(self, max: usize) -> Self {
        self.configure(|c| c.max_event_types = max)
    }

    /// Classifies the inner service's errors of types the crate does not
    /// know. Defaults to none (see
    /// [`VastMetricsLayer::classify_errors`](crate::VastMetricsLayer::classify_errors)).
    pub fn classify_errors(self, classifier: Classifier) -> Self {
        self.configure(|c| c.classify = Some(classifier))
    }

    fn state(&self) -> Option<Arc<TrackingState>> {
        if !self.recorder.is_enabled() {
            return None;
        }
        let state = self
            .state
            .get_or_init(|| Arc::new(TrackingState::new(self.recorder.clone(), &self.config)));
        Some(state.clone())
    }
}

impl<S> Layer<S> for TrackingMetricsLayer {
    type Service = TrackingMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackingMetricsService::new(inner, self.state())
    }
}
