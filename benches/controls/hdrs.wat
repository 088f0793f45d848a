;; Control: a proxy-wasm module that reads the request header map and the response header map
;; (one proxy_get_header_map_pairs each, which also makes the host call back into
;; proxy_on_memory_allocate for the copy) and changes nothing. That is the least a filter
;; that looks at both directions can do: four VM entries for the callbacks (create, request
;; headers, response headers, delete), two allocation entries, two host calls. Rendition's
;; filter does this plus its decision; its cost above this row is the part it can cut.
(module
  (import "env" "proxy_get_header_map_pairs"
    (func $get_header_map_pairs (param $map_type i32) (param $data_ptr i32) (param $size_ptr i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  ;; Every copy the host makes lands at 64 KiB (the second page); the bench's header maps are
  ;; far smaller than a page.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32) (i32.const 65536))
  (func (export "proxy_on_context_create") (param $context i32) (param $parent i32))
  (func (export "proxy_on_vm_start") (param $root i32) (param $size i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32) (i32.const 1))
  ;; Map types: 0 request headers, 2 response headers. The pointer and size the host writes go
  ;; to bytes 16 and 20. Returns 0: Action::Continue.
  (func (export "proxy_on_request_headers") (param $context i32) (param $headers i32) (param $end i32) (result i32)
    (drop (call $get_header_map_pairs (i32.const 0) (i32.const 16) (i32.const 20)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param $context i32) (param $headers i32) (param $end i32) (result i32)
    (drop (call $get_header_map_pairs (i32.const 2) (i32.const 16) (i32.const 20)))
    (i32.const 0))
  (func (export "proxy_on_delete") (param $context i32))
)
