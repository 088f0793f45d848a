;; Control for the hit path: what routing a hit through a proxy-wasm module costs, with no
;; decision at all. It makes the host calls Rendition's filter makes on a hit, and nothing else:
;;   request:  read the header map; set `x-rendition-variant` (the value is this module's plugin
;;             configuration, copied once in on_configure); ask Envoy to match the route again
;;             (the `clear_route_cache` foreign function), so the hit route sends the request to
;;             the sidecar;
;;   response: read the header map; remove the sidecar's `x-rendition-variant`; set `accept-ch`.
;; The filter's hit row minus this row is the filter's own decision (mask, key, index lookup);
;; this row minus the no-filter row that sends the same header from the client is the price of
;; routing from a module. benches/filter_hit_paths.py runs it.
(module
  (import "env" "proxy_get_header_map_pairs"
    (func $get_header_map_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value"
    (func $replace_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value"
    (func $remove_header_map_value (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes"
    (func $get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_call_foreign_function"
    (func $call_foreign_function (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; Names at fixed offsets; the configured value is copied to 2048 and its length kept at 32.
  ;; Every copy the host makes lands at 64 KiB (the second page).
  (data (i32.const 1024) "x-rendition-variant")
  (data (i32.const 1056) "clear_route_cache")
  (data (i32.const 1200) "accept-ch")
  (data (i32.const 1216) "Sec-CH-DPR, Sec-CH-Viewport-Width, Sec-CH-UA-Mobile, DPR, Viewport-Width")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32) (i32.const 65536))
  (func (export "proxy_on_context_create") (param $context i32) (param $parent i32))
  (func (export "proxy_on_vm_start") (param $root i32) (param $size i32) (result i32) (i32.const 1))
  ;; Buffer type 7: the plugin configuration. At most 256 bytes are kept.
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (local $n i32)
    (drop (call $get_buffer_bytes (i32.const 7) (i32.const 0) (local.get $size) (i32.const 24) (i32.const 28)))
    (local.set $n (i32.load (i32.const 28)))
    (if (i32.gt_u (local.get $n) (i32.const 256)) (then (local.set $n (i32.const 256))))
    (memory.copy (i32.const 2048) (i32.load (i32.const 24)) (local.get $n))
    (i32.store (i32.const 32) (local.get $n))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $context i32) (param $headers i32) (param $end i32) (result i32)
    (drop (call $get_header_map_pairs (i32.const 0) (i32.const 16) (i32.const 20)))
    (drop (call $replace_header_map_value (i32.const 0) (i32.const 1024) (i32.const 19) (i32.const 2048) (i32.load (i32.const 32))))
    (drop (call $call_foreign_function (i32.const 1056) (i32.const 17) (i32.const 0) (i32.const 0) (i32.const 36) (i32.const 40)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param $context i32) (param $headers i32) (param $end i32) (result i32)
    (drop (call $get_header_map_pairs (i32.const 2) (i32.const 16) (i32.const 20)))
    (drop (call $remove_header_map_value (i32.const 2) (i32.const 1024) (i32.const 19)))
    (drop (call $replace_header_map_value (i32.const 2) (i32.const 1200) (i32.const 9) (i32.const 1216) (i32.const 72)))
    (i32.const 0))
  (func (export "proxy_on_delete") (param $context i32))
)
