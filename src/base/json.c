/* placeholder: being written */
#include "base/json.h"
