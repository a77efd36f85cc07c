/* TCP for the handover stream between the tool and an agent on another host: connecting and
 * listening with deadlines (TLS runs on top: remote/x509/). */
#ifndef QU_REMOTE_TRANSPORT_H
#define QU_REMOTE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#define QU_AGENT_PORT 4779

/* Splits "HOST", "HOST:PORT", "[V6]:PORT" or "V6" into host and port (default_port if none). */
int qu_tcp_split(const char *hostport, int default_port, char *host, size_t len, int *port);
/* Connects to hostport before deadline_us; returns the socket or -errno (message set). */
int qu_tcp_connect(const char *hostport, int default_port, uint64_t deadline_us);
/* Listens on "[ADDR:]PORT" ("PORT" alone: every address); returns the socket or -errno. */
int qu_tcp_listen(const char *addrport, int default_port);
/* The local address of a connected socket as QEMU writes it in a URI: "1.2.3.4" or "[::1]". */
int qu_tcp_local_host(int sock, char *buf, size_t len);

#endif
