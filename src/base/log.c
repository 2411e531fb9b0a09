/* placeholder: being written */
#include "base/log.h"
