package org.example.classifier;

import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.support.common.FileUtil;

class Classifier {
    Interpreter open(android.content.Context context) throws java.io.IOException {
        return new Interpreter(FileUtil.loadMappedFile(context, "classifier.tflite"));
    }
}
