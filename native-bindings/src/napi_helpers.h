// Small Node-API helpers shared by vipr's native ports (vipr_port.c, the
// AF_PACKET ring; vipr_xdp_port.c, AF_XDP): errors that name the interface
// and errno, typed-array and option readers that refuse bad input before C
// touches memory, and entering another network namespace for one open().
// Header-only (static inline): each addon is one translation unit plus this.
#ifndef VIPR_NAPI_HELPERS_H
#define VIPR_NAPI_HELPERS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      throw_last(env, #call);                                           \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

static inline void throw_last(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char message[256];
  snprintf(message, sizeof message, "vipr-native: %s: %s", what,
           info && info->error_message ? info->error_message : "N-API call failed");
  napi_throw_error(env, NULL, message);
}

static inline napi_value throw_errno(napi_env env, const char *what, const char *ifname, int err) {
  // "interface lan0: setsockopt(PACKET_RX_RING, TPACKET_V2): Cannot allocate memory", code ENOMEM
  char full[512];
  // `what` is cut at 300 bytes (an exec path can be long); the errno text always fits.
  if (ifname) snprintf(full, sizeof full, "interface %s: %.300s: %s", ifname, what, strerror(err));
  else snprintf(full, sizeof full, "vipr-native: %.300s: %s", what, strerror(err));
  const char *name = strerrorname_np(err);
  napi_value code, msg, error;
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, full, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_value errno_value;
  napi_create_int32(env, -err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_throw(env, error);
  return NULL;
}

static inline napi_value throw_range(napi_env env, const char *message) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
  return NULL;
}

static inline napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

static inline napi_value make_uint32(napi_env env, uint32_t value) {
  napi_value v;
  napi_create_uint32(env, value, &v);
  return v;
}

static inline napi_value make_bool(napi_env env, bool value) {
  napi_value v;
  napi_get_boolean(env, value, &v);
  return v;
}

static inline napi_value undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

static inline bool get_u32(napi_env env, napi_value value, uint32_t *out, const char *name) {
  if (napi_get_value_uint32(env, value, out) != napi_ok) {
    char message[128];
    snprintf(message, sizeof message, "vipr-native: %s must be a number", name);
    throw_type(env, message);
    return false;
  }
  return true;
}

// A typed array of the expected type (Buffer counts as Uint8Array): its data and element count.
static inline bool get_array(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *length,
                      const char *name) {
  bool is_typed = false;
  napi_is_typedarray(env, value, &is_typed);
  napi_typedarray_type type;
  if (is_typed && napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) == napi_ok &&
      (type == want || (want == napi_uint8_array && type == napi_uint8_clamped_array))) {
    return true;
  }
  char message[128];
  snprintf(message, sizeof message, "vipr-native: %s has the wrong type", name);
  throw_type(env, message);
  return false;
}

// An optional option: false (and *value untouched) when absent or undefined.
static inline bool option_value(napi_env env, napi_value options, const char *key, napi_value *value) {
  bool has = false;
  if (napi_has_named_property(env, options, key, &has) != napi_ok || !has) return false;
  napi_value v;
  napi_valuetype type;
  if (napi_get_named_property(env, options, key, &v) != napi_ok || napi_typeof(env, v, &type) != napi_ok || type == napi_undefined) return false;
  *value = v;
  return true;
}

static inline bool throw_option(napi_env env, const char *key, const char *what) {
  char message[96];
  snprintf(message, sizeof message, "vipr-native: options.%s must be %s", key, what);
  throw_type(env, message);
  return false;
}

// Reads an optional numeric option; absent or undefined leaves *out unchanged.
static inline bool option_u32(napi_env env, napi_value options, const char *key, uint32_t *out) {
  napi_value v;
  if (!option_value(env, options, key, &v)) return true;
  char name[64];
  snprintf(name, sizeof name, "options.%s", key);
  return get_u32(env, v, out, name);
}

static inline bool option_bool(napi_env env, napi_value options, const char *key, bool *out) {
  napi_value v;
  if (!option_value(env, options, key, &v)) return true;
  return napi_get_value_bool(env, v, out) == napi_ok || throw_option(env, key, "a boolean");
}

// Reads an optional string option into buf ("" when absent).
static inline bool option_string(napi_env env, napi_value options, const char *key, char *buf, size_t size) {
  buf[0] = 0;
  napi_value v;
  if (!option_value(env, options, key, &v)) return true;
  size_t len;
  return napi_get_value_string_utf8(env, v, buf, size, &len) == napi_ok || throw_option(env, key, "a string");
}
// ---- network namespaces -------------------------------------------------------

// options.netns: create a port's sockets inside that network namespace (a
// name under /run/netns, as `ip netns` makes, or a path), then switch this
// thread back with leave_netns(). A socket keeps the namespace it was created
// in, so the rest of vipr stays where it is: lab tests open ports in
// throwaway namespaces. *self_ns is -1 when `netns` is empty (nothing to do).
// False with a JS exception pending.
static inline bool enter_netns(napi_env env, const char *netns, const char *ifname, int *self_ns) {
  *self_ns = -1;
  if (!netns[0]) return true;
  char path[300];
  if (netns[0] == '/') snprintf(path, sizeof path, "%s", netns);
  else if (strchr(netns, '/')) return throw_range(env, "vipr-native: options.netns must be a name or an absolute path"), false;
  else snprintf(path, sizeof path, "/run/netns/%s", netns);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) return throw_errno(env, "open(options.netns)", ifname, errno), false;
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int e = errno;
    close(target);
    return throw_errno(env, "open(/proc/thread-self/ns/net)", ifname, e), false;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(self);
    return throw_errno(env, "setns(options.netns)", ifname, e), false;
  }
  close(target);
  *self_ns = self;
  return true;
}

// Back to the thread's own namespace; a thread that cannot return would run
// the rest of vipr in the wrong network, so that is fatal.
static inline void leave_netns(int self_ns) {
  if (self_ns < 0) return;
  if (setns(self_ns, CLONE_NEWNET) < 0) napi_fatal_error("vipr-native", NAPI_AUTO_LENGTH, "cannot return to the original network namespace", NAPI_AUTO_LENGTH);
  close(self_ns);
}

#endif
