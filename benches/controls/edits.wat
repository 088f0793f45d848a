;; Control: `hdrs.wat` plus the two response header edits every image response through
;; Rendition gets (`vary` and `accept-ch`, one proxy_replace_header_map_value each). That is
;; the least a filter doing Rendition's job on a miss can do without deciding anything: read
;; both maps, set two headers. The filter's cost above this row is its decision (mask, key,
;; index lookup, notify) and the debug header.
(module
  (import "env" "proxy_get_header_map_pairs"
    (func $get_header_map_pairs (param $map_type i32) (param $data_ptr i32) (param $size_ptr i32) (result i32)))
  (import "env" "proxy_replace_header_map_value"
    (func $replace_header_map_value (param $map_type i32) (param $key_ptr i32) (param $key_size i32)
      (param $value_ptr i32) (param $value_size i32) (result i32)))
  (memory (export "memory") 2)
  ;; The names and values, at fixed offsets in the first page (the host's copies go to 64 KiB).
  (data (i32.const 1024) "vary")
  (data (i32.const 1040) "Accept, Save-Data, Sec-CH-Viewport-Width, Sec-CH-DPR, Sec-CH-UA-Mobile")
  (data (i32.const 1200) "accept-ch")
  (data (i32.const 1216) "Sec-CH-DPR, Sec-CH-Viewport-Width, Sec-CH-UA-Mobile, DPR, Viewport-Width")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32) (i32.const 65536))
  (func (export "proxy_on_context_create") (param $context i32) (param $parent i32))
  (func (export "proxy_on_vm_start") (param $root i32) (param $size i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $context i32) (param $headers i32) (param $end i32) (result i32)
    (drop (call $get_header_map_pairs (i32.const 0) (i32.const 16) (i32.const 20)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param $context i32) (param $headers i32) (param $end i32) (result i32)
    (drop (call $get_header_map_pairs (i32.const 2) (i32.const 16) (i32.const 20)))
    (drop (call $replace_header_map_value (i32.const 2) (i32.const 1024) (i32.const 4) (i32.const 1040) (i32.const 70)))
    (drop (call $replace_header_map_value (i32.const 2) (i32.const 1200) (i32.const 9) (i32.const 1216) (i32.const 72)))
    (i32.const 0))
  (func (export "proxy_on_delete") (param $context i32))
)
