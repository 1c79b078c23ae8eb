// vipr-liveness: the liveness link, a TUN interface whose life is vipr's.
//
// keepalived (track_interface) and BIRD (static routes `via "IFACE"` with
// `check link`) both follow an interface's link state through netlink, at
// once. A non-persistent TUN interface exists only while a process holds its
// file descriptor: when vipr dies by any means (kill -9, a crash, the OOM
// killer, systemd killing its cgroup) the kernel closes the descriptor and
// deletes the interface, and both engines see it go within milliseconds. No
// guard process, no file that outlives its writer. While vipr runs it sets the
// carrier itself (TUNSETCARRIER, Linux 5.0): on only while it forwards.
//
//   open(ifname)          -> fd   creates IFNAME (IFF_TUN, no packet info), carrier off, admin up
//   carrier(fd, on)                carrier on or off
//   close(fd)                      the interface goes with it
//
// The descriptor is close-on-exec, so a child vipr runs (notify commands,
// birdc) never keeps the interface alive. Nothing reads it: the kernel routes
// nothing there (no address), and what it queues (IPv6 router solicitations)
// is dropped once the queue is full.

#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TUNSETCARRIER
#define TUNSETCARRIER _IOW('T', 226, int)
#endif

static napi_value throw_errno(napi_env env, const char *what, int error) {
  char message[512];
  snprintf(message, sizeof message, "%s: %s", what, strerror(error));
  napi_value msg, err, code;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  const char *name = error == EPERM ? "EPERM" : error == EACCES ? "EACCES" : error == EBUSY ? "EBUSY"
    : error == ENOENT ? "ENOENT" : error == EINVAL ? "EINVAL" : error == ENODEV ? "ENODEV" : "EIO";
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, err, "code", code);
  napi_throw(env, err);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *what) {
  napi_throw_type_error(env, NULL, what);
  return NULL;
}

static int set_carrier(int fd, int on) {
  return ioctl(fd, TUNSETCARRIER, &on);
}

static napi_value vipr_liveness_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char name[IFNAMSIZ + 1];
  size_t length = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length) != napi_ok) return throw_type(env, "open(ifname): a string");
  if (length == 0 || length >= IFNAMSIZ) return throw_type(env, "open(ifname): 1 to 15 characters");

  char what[128];
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    snprintf(what, sizeof what, "liveness link %s: open /dev/net/tun", name);
    return throw_errno(env, what, errno);
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, length);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int error = errno;
    close(fd);
    // EBUSY: another process holds it (a second vipr with the same link name).
    snprintf(what, sizeof what, "liveness link %s: TUNSETIFF", name);
    return throw_errno(env, what, error);
  }
  // Carrier off before the link goes up: the engines must not see it up until vipr forwards.
  if (set_carrier(fd, 0) != 0) {
    int error = errno;
    close(fd);
    snprintf(what, sizeof what, "liveness link %s: TUNSETCARRIER (Linux 5.0 or newer)", name);
    return throw_errno(env, what, error);
  }
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int error = 0;
  if (sock < 0) error = errno;
  else {
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, name, length);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) error = errno;
    else {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) error = errno;
    }
    close(sock);
  }
  if (error != 0) {
    close(fd);
    snprintf(what, sizeof what, "liveness link %s: set it up", name);
    return throw_errno(env, what, error);
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

static napi_value vipr_liveness_carrier(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  bool on = false;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_bool(env, argv[1], &on) != napi_ok || fd < 0) {
    return throw_type(env, "carrier(fd, on): a descriptor and a boolean");
  }
  if (set_carrier(fd, on ? 1 : 0) != 0) return throw_errno(env, "liveness link: TUNSETCARRIER", errno);
  return NULL;
}

static napi_value vipr_liveness_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return throw_type(env, "close(fd): a descriptor");
  if (fd >= 0) close(fd);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, vipr_liveness_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"carrier", NULL, vipr_liveness_carrier, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, vipr_liveness_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
