/* placeholder: being written */
#include "crypto/seal.h"
