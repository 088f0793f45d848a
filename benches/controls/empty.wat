;; Control: a proxy-wasm module that does nothing. It exports only what Envoy needs to load it
;; and to create and delete a context, so each request costs exactly two VM entries
;; (proxy_on_context_create, proxy_on_delete) and no host call. benches/filter_bench.py builds
;; it with `wat2wasm` and loads it in place of the filter: the difference to no filter at all
;; is what merely having a wasm filter on a route costs.
(module
  (memory (export "memory") 2)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  ;; Never called (the module asks the host for nothing); a fixed address keeps it valid.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32) (i32.const 65536))
  (func (export "proxy_on_context_create") (param $context i32) (param $parent i32))
  (func (export "proxy_on_vm_start") (param $root i32) (param $size i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param $context i32))
)
