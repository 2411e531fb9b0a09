/* placeholder: being written */
#include "base/buf.h"
