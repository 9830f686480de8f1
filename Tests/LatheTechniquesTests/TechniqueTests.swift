// The compressor protocol's shared expectations, checked for every compressor added to `all`.

import Testing
@testable import LatheTechniques
import LatheModels
import LatheTensor
