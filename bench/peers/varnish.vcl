vcl 4.1;
# Varnish as a peer in `npm run bench -- --peers` (bench/peers/index.js fills the {{…}} slots):
# ESI on for /esi/, every response cached for an hour (as the origin's Cache-Control says for the
# cacheable paths), no-store passed. Varnish coalesces concurrent misses by default.
import directors;
{{BACKENDS}}
sub vcl_init {
  new origins = directors.round_robin();
{{DIRECTOR}}
}
sub vcl_recv {
  set req.backend_hint = origins.backend();
}
sub vcl_backend_response {
  if (bereq.url ~ "^/esi/") { set beresp.do_esi = true; }
  if (beresp.http.Cache-Control ~ "no-store") {
    set beresp.uncacheable = true;
    set beresp.ttl = 120s;
    return (deliver);
  }
  set beresp.ttl = 1h;
  set beresp.grace = 1h;
}
