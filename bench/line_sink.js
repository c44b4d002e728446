// line_sink.js - a fast local HTTP sink for the LINE benchmark: answers
// every POST /v2/bot/message/{push,multicast} with 200 {} and counts the
// user ids it received.  Not a fake (no checks): the point is to be faster
// than kairand, so that the figure measures kairand.
//   node line_sink.js PORTFILE
"use strict";
const http = require("http");
const fs = require("fs");
let requests = 0, ids = 0;
const srv = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    requests++;
    try {
      const j = JSON.parse(Buffer.concat(chunks).toString());
      ids += Array.isArray(j.to) ? j.to.length : 1;
    } catch (e) { /* wrk's body */ }
    res.writeHead(200, {"Content-Type": "application/json",
                        "X-Line-Request-Id": String(requests)});
    res.end(req.url.endsWith("/push") ? '{"sentMessages":[]}' : "{}");
  });
});
srv.keepAliveTimeout = 60000;
srv.listen(0, "127.0.0.1", () => {
  fs.writeFileSync(process.argv[2], String(srv.address().port));
});
process.on("SIGTERM", () => {
  process.stderr.write(JSON.stringify({requests, ids}) + "\n");
  process.exit(0);
});
