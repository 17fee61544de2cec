#include "acl/acl.h"
#include <hip/hip_runtime.h>
