//! A mock proxy-wasm host: the host functions the SDK imports, defined as plain Rust functions
//! over per-thread state, so the filter's wasm shell runs natively and is driven through the
//! SDK's exported entry points (`proxy_on_context_create`, `proxy_on_request_headers`, ...)
//! exactly the way Envoy calls them.
//!
//! Each test thread is one "Envoy worker": its own dispatcher (the SDK keeps it in a thread
//! local) and its own shared data. Buffers handed to the SDK are allocated with the global
//! allocator as `len == capacity`, as the SDK frees them with `Vec::from_raw_parts`.

#![allow(
    dead_code,
    clippy::missing_safety_doc,
    clippy::not_unsafe_ptr_arg_deref
)]

use proxy_wasm::types::{Action, BufferType, LogLevel, MapType, MetricType, Status};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// One outgoing `dispatch_http_call`.
#[derive(Clone, Debug)]
pub struct HttpCall {
    pub token: u32,
    pub upstream: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

impl HttpCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
pub struct Host {
    pub plugin_config: Vec<u8>,
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub call_response_headers: Vec<(String, String)>,
    pub call_response_body: Vec<u8>,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    pub calls: Vec<HttpCall>,
    pub foreign_calls: Vec<String>,
    /// When `Some`, every header edit the filter asks for, as `replace NAME` / `remove NAME`
    /// (each one is a host call, which is what a request costs in Envoy). Off by default so
    /// `per_request_cost` counts the filter, not this record.
    pub header_edits: Option<Vec<String>>,
    pub metric_names: Vec<(String, MetricType)>,
    pub metric_values: Vec<i64>,
    pub logs: Vec<(LogLevel, String)>,
    pub now_ms: u64,
    pub tick_ms: u32,
    pub next_token: u32,
    /// Status `proxy_http_call` answers (BadArgument = unknown cluster).
    pub dispatch_status: Option<Status>,
}

thread_local! {
    pub static HOST: RefCell<Host> = RefCell::new(Host { now_ms: 1_700_000_000_000, ..Host::default() });
    /// When `Some`, how many times each host function was called: what a request costs in
    /// Envoy is mostly these crossings, so a test can pin them. Off by default, like
    /// `header_edits`, so `per_request_cost` times the filter alone.
    pub static HOST_CALLS: RefCell<Option<BTreeMap<&'static str, u32>>> = const { RefCell::new(None) };
}

fn counted(name: &'static str) {
    HOST_CALLS.with(|c| {
        if let Some(calls) = c.borrow_mut().as_mut() {
            *calls.entry(name).or_default() += 1;
        }
    });
}

/// Counts host calls while `f` runs, by host function.
pub fn host_calls(f: impl FnOnce()) -> BTreeMap<&'static str, u32> {
    HOST_CALLS.with(|c| *c.borrow_mut() = Some(BTreeMap::new()));
    f();
    HOST_CALLS.with(|c| c.borrow_mut().take().unwrap_or_default())
}

pub fn with<R>(f: impl FnOnce(&mut Host) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

/// The value of a metric by name (summed over definitions, as Envoy does).
pub fn metric(name: &str) -> i64 {
    with(|h| {
        h.metric_names
            .iter()
            .zip(&h.metric_values)
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| *v)
            .sum()
    })
}

fn give(bytes: Vec<u8>, data: *mut *mut u8, size: *mut usize) {
    let boxed = bytes.into_boxed_slice();
    unsafe {
        *size = boxed.len();
        *data = Box::into_raw(boxed) as *mut u8;
    }
}

fn text(ptr: *const u8, len: usize) -> String {
    if ptr.is_null() || len == 0 {
        return String::new();
    }
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr, len) }).into_owned()
}

fn bytes(ptr: *const u8, len: usize) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
}

fn serialize(map: &[(String, String)]) -> Vec<u8> {
    let mut out = (map.len() as u32).to_le_bytes().to_vec();
    for (k, v) in map {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in map {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

fn deserialize(b: &[u8]) -> Vec<(String, String)> {
    if b.len() < 4 {
        return Vec::new();
    }
    let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let mut p = 4 + n * 8;
    let mut out = Vec::new();
    for i in 0..n {
        let s = 4 + i * 8;
        let kl = u32::from_le_bytes([b[s], b[s + 1], b[s + 2], b[s + 3]]) as usize;
        let vl = u32::from_le_bytes([b[s + 4], b[s + 5], b[s + 6], b[s + 7]]) as usize;
        let k = String::from_utf8_lossy(&b[p..p + kl]).into_owned();
        p += kl + 1;
        let v = String::from_utf8_lossy(&b[p..p + vl]).into_owned();
        p += vl + 1;
        out.push((k, v));
    }
    out
}

fn map_of(h: &mut Host, t: MapType) -> &mut Vec<(String, String)> {
    match t {
        MapType::HttpRequestHeaders => &mut h.request_headers,
        MapType::HttpResponseHeaders => &mut h.response_headers,
        _ => &mut h.call_response_headers,
    }
}

#[no_mangle]
pub extern "C" fn proxy_log(level: LogLevel, data: *const u8, size: usize) -> Status {
    counted("proxy_log");
    let message = text(data, size);
    with(|h| h.logs.push((level, message)));
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_log_level(level: *mut LogLevel) -> Status {
    counted("proxy_get_log_level");
    unsafe { *level = LogLevel::Trace };
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_current_time_nanoseconds(t: *mut u64) -> Status {
    counted("proxy_get_current_time_nanoseconds");
    let ms = with(|h| h.now_ms);
    unsafe { *t = ms * 1_000_000 };
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_set_tick_period_milliseconds(period: u32) -> Status {
    counted("proxy_set_tick_period_milliseconds");
    with(|h| h.tick_ms = period);
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_buffer_bytes(
    t: BufferType,
    start: usize,
    max: usize,
    data: *mut *mut u8,
    size: *mut usize,
) -> Status {
    counted("proxy_get_buffer_bytes");
    let all = with(|h| match t {
        BufferType::PluginConfiguration => Some(h.plugin_config.clone()),
        BufferType::HttpCallResponseBody => Some(h.call_response_body.clone()),
        _ => None,
    });
    match all {
        Some(b) => {
            let end = start.saturating_add(max).min(b.len());
            give(b.get(start..end).unwrap_or_default().to_vec(), data, size);
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_set_buffer_bytes(
    _: BufferType,
    _: usize,
    _: usize,
    _: *const u8,
    _: usize,
) -> Status {
    counted("proxy_set_buffer_bytes");
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_header_map_pairs(
    t: MapType,
    data: *mut *mut u8,
    size: *mut usize,
) -> Status {
    counted("proxy_get_header_map_pairs");
    let b = with(|h| serialize(map_of(h, t)));
    give(b, data, size);
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_set_header_map_pairs(t: MapType, data: *const u8, size: usize) -> Status {
    counted("proxy_set_header_map_pairs");
    let map = deserialize(&bytes(data, size));
    with(|h| *map_of(h, t) = map);
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_get_header_map_value(
    t: MapType,
    kd: *const u8,
    ks: usize,
    data: *mut *mut u8,
    size: *mut usize,
) -> Status {
    counted("proxy_get_header_map_value");
    let key = text(kd, ks);
    let value = with(|h| {
        map_of(h, t)
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&key))
            .map(|(_, v)| v.clone())
    });
    match value {
        Some(v) => {
            give(v.into_bytes(), data, size);
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_replace_header_map_value(
    t: MapType,
    kd: *const u8,
    ks: usize,
    vd: *const u8,
    vs: usize,
) -> Status {
    counted("proxy_replace_header_map_value");
    remove_header(t, &text(kd, ks), "replace");
    add_header(t, kd, ks, vd, vs);
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_remove_header_map_value(t: MapType, kd: *const u8, ks: usize) -> Status {
    counted("proxy_remove_header_map_value");
    remove_header(t, &text(kd, ks), "remove");
    Status::Ok
}

/// Removes every `key` from the map, noting the edit as `{edit} {key}` when a test asks.
fn remove_header(t: MapType, key: &str, edit: &str) {
    with(|h| {
        if let Some(edits) = &mut h.header_edits {
            edits.push(format!("{edit} {key}"));
        }
        map_of(h, t).retain(|(k, _)| !k.eq_ignore_ascii_case(key));
    });
}

#[no_mangle]
pub extern "C" fn proxy_add_header_map_value(
    t: MapType,
    kd: *const u8,
    ks: usize,
    vd: *const u8,
    vs: usize,
) -> Status {
    counted("proxy_add_header_map_value");
    add_header(t, kd, ks, vd, vs);
    Status::Ok
}

fn add_header(t: MapType, kd: *const u8, ks: usize, vd: *const u8, vs: usize) {
    let (key, value) = (text(kd, ks), text(vd, vs));
    with(|h| map_of(h, t).push((key, value)));
}

#[no_mangle]
pub extern "C" fn proxy_get_shared_data(
    kd: *const u8,
    ks: usize,
    data: *mut *mut u8,
    size: *mut usize,
    cas: *mut u32,
) -> Status {
    counted("proxy_get_shared_data");
    let key = text(kd, ks);
    match with(|h| h.shared.get(&key).cloned()) {
        Some((v, c)) => {
            give(v, data, size);
            unsafe { *cas = c };
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_set_shared_data(
    kd: *const u8,
    ks: usize,
    vd: *const u8,
    vs: usize,
    cas: u32,
) -> Status {
    counted("proxy_set_shared_data");
    let (key, value) = (text(kd, ks), bytes(vd, vs));
    with(|h| {
        let current = h.shared.get(&key).map_or(0, |(_, c)| *c);
        if cas != 0 && cas != current {
            return Status::CasMismatch;
        }
        h.shared.insert(key, (value, current + 1));
        Status::Ok
    })
}

#[no_mangle]
pub extern "C" fn proxy_http_call(
    ud: *const u8,
    us: usize,
    hd: *const u8,
    hs: usize,
    bd: *const u8,
    bs: usize,
    _td: *const u8,
    _ts: usize,
    timeout: u32,
    token: *mut u32,
) -> Status {
    counted("proxy_http_call");
    let call = HttpCall {
        token: 0,
        upstream: text(ud, us),
        headers: deserialize(&bytes(hd, hs)),
        body: bytes(bd, bs),
        timeout_ms: timeout,
    };
    with(|h| {
        if let Some(status) = h.dispatch_status {
            return status;
        }
        h.next_token += 1;
        let t = h.next_token;
        unsafe { *token = t };
        h.calls.push(HttpCall { token: t, ..call });
        Status::Ok
    })
}

#[no_mangle]
pub extern "C" fn proxy_call_foreign_function(
    nd: *const u8,
    ns: usize,
    _ad: *const u8,
    _as: usize,
    _rd: *mut *mut u8,
    _rs: *mut usize,
) -> Status {
    counted("proxy_call_foreign_function");
    let name = text(nd, ns);
    with(|h| h.foreign_calls.push(name));
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_define_metric(
    t: MetricType,
    nd: *const u8,
    ns: usize,
    id: *mut u32,
) -> Status {
    counted("proxy_define_metric");
    let name = text(nd, ns);
    with(|h| {
        h.metric_names.push((name, t));
        h.metric_values.push(0);
        unsafe { *id = h.metric_names.len() as u32 - 1 };
    });
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_increment_metric(id: u32, offset: i64) -> Status {
    counted("proxy_increment_metric");
    with(|h| match h.metric_values.get_mut(id as usize) {
        Some(v) => {
            *v += offset;
            Status::Ok
        }
        None => Status::NotFound,
    })
}

#[no_mangle]
pub extern "C" fn proxy_record_metric(id: u32, value: u64) -> Status {
    counted("proxy_record_metric");
    with(|h| match h.metric_values.get_mut(id as usize) {
        Some(v) => {
            *v = value as i64;
            Status::Ok
        }
        None => Status::NotFound,
    })
}

#[no_mangle]
pub extern "C" fn proxy_get_metric(id: u32, value: *mut u64) -> Status {
    counted("proxy_get_metric");
    with(|h| match h.metric_values.get(id as usize) {
        Some(v) => {
            unsafe { *value = *v as u64 };
            Status::Ok
        }
        None => Status::NotFound,
    })
}

#[no_mangle]
pub extern "C" fn proxy_set_effective_context(_id: u32) -> Status {
    counted("proxy_set_effective_context");
    Status::Ok
}

// Imports the SDK declares that the filter does not use: present so the test links, and
// loud if ever reached.
macro_rules! unused_import {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> Status {
            $(let _ = $arg;)*
            panic!(concat!("mock host: ", stringify!($name), " not expected"))
        }
    )*};
}

unused_import! {
    proxy_get_property(a: *const u8, b: usize, c: *mut *mut u8, d: *mut usize);
    proxy_set_property(a: *const u8, b: usize, c: *const u8, d: usize);
    proxy_register_shared_queue(a: *const u8, b: usize, c: *mut u32);
    proxy_resolve_shared_queue(a: *const u8, b: usize, c: *const u8, d: usize, e: *mut u32);
    proxy_dequeue_shared_queue(a: u32, b: *mut *mut u8, c: *mut usize);
    proxy_enqueue_shared_queue(a: u32, b: *const u8, c: usize);
    proxy_continue_stream(a: u32);
    proxy_close_stream(a: u32);
    proxy_send_local_response(a: u32, b: *const u8, c: usize, d: *const u8, e: usize, f: *const u8, g: usize, h: i32);
    proxy_grpc_call(a: *const u8, b: usize, c: *const u8, d: usize, e: *const u8, f: usize, g: *const u8, h: usize, i: *const u8, j: usize, k: u32, l: *mut u32);
    proxy_grpc_stream(a: *const u8, b: usize, c: *const u8, d: usize, e: *const u8, f: usize, g: *const u8, h: usize, i: *mut u32);
    proxy_grpc_send(a: u32, b: *const u8, c: usize, d: bool);
    proxy_grpc_cancel(a: u32);
    proxy_grpc_close(a: u32);
    proxy_get_status(a: *mut u32, b: *mut *mut u8, c: *mut usize);
    proxy_done();
}

// ---- driving the SDK the way Envoy does ----

extern "C" {
    fn proxy_on_context_create(context_id: u32, root_context_id: u32);
    fn proxy_on_configure(context_id: u32, size: usize) -> bool;
    fn proxy_on_tick(context_id: u32);
    fn proxy_on_request_headers(context_id: u32, num_headers: usize, end_of_stream: bool)
        -> Action;
    fn proxy_on_response_headers(
        context_id: u32,
        num_headers: usize,
        end_of_stream: bool,
    ) -> Action;
    fn proxy_on_http_call_response(
        context_id: u32,
        token: u32,
        headers: usize,
        body: usize,
        trailers: usize,
    );
    fn proxy_on_done(context_id: u32) -> bool;
    fn proxy_on_delete(context_id: u32);
}

/// Creates and configures a root context with `config`; what `on_configure` answered.
pub fn start_root(id: u32, config: &str) -> bool {
    with(|h| h.plugin_config = config.as_bytes().to_vec());
    unsafe {
        proxy_on_context_create(id, 0);
        proxy_on_configure(id, config.len())
    }
}

pub fn tick(root: u32) {
    unsafe { proxy_on_tick(root) }
}

/// Answers the call `token` (made by context `ctx`) with `status` (None = timeout/reset, no
/// headers at all) and `body`.
pub fn answer_call(ctx: u32, token: u32, status: Option<&str>, body: &[u8]) {
    let headers: Vec<(String, String)> = status
        .map(|s| vec![(":status".to_owned(), s.to_owned())])
        .unwrap_or_default();
    let n = headers.len();
    with(|h| {
        h.call_response_headers = headers;
        h.call_response_body = body.to_vec();
    });
    unsafe { proxy_on_http_call_response(ctx, token, n, body.len(), 0) }
}

pub fn take_calls() -> Vec<HttpCall> {
    with(|h| std::mem::take(&mut h.calls))
}

/// One request through a filter root: request headers in, response headers in; returns the
/// request headers as forwarded upstream and the response headers as sent to the client.
pub struct Exchange {
    pub upstream_request: Vec<(String, String)>,
    pub client_response: Vec<(String, String)>,
}

impl Exchange {
    pub fn request(&self, name: &str) -> Option<&str> {
        find(&self.upstream_request, name)
    }
    pub fn response(&self, name: &str) -> Option<&str> {
        find(&self.client_response, name)
    }
}

fn find<'a>(map: &'a [(String, String)], name: &str) -> Option<&'a str> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn exchange(
    root: u32,
    ctx: u32,
    request: &[(&str, &str)],
    // Called with the forwarded request headers; returns the upstream's response headers.
    upstream: impl FnOnce(&[(String, String)]) -> Vec<(String, String)>,
) -> Exchange {
    let owned = |m: &[(&str, &str)]| -> Vec<(String, String)> {
        m.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    with(|h| h.request_headers = owned(request));
    unsafe {
        proxy_on_context_create(ctx, root);
        proxy_on_request_headers(ctx, request.len(), true);
    }
    let upstream_request = with(|h| h.request_headers.clone());
    let response = upstream(&upstream_request);
    let n = response.len();
    with(|h| h.response_headers = response);
    unsafe {
        proxy_on_response_headers(ctx, n, false);
        proxy_on_done(ctx);
        proxy_on_delete(ctx);
    }
    Exchange {
        upstream_request,
        client_response: with(|h| h.response_headers.clone()),
    }
}
