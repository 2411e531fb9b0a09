/* placeholder: being written */
#include "base/config.h"
